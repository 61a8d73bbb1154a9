using System.Globalization;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace McpGuard.Admin;

/// <summary>
/// Admin input bound from the request, with what was wrong with it. Binding never fails the request by itself (a failure
/// there would be an empty 400 from the framework): the admin filter (<see cref="AdminApi.FilterAsync"/>) answers for
/// every problem at once, with McpGuard's problem details, before the handler runs.
/// </summary>
internal interface IAdminInput
{
    /// <summary>Why the body could not be read at all, if it could not.</summary>
    AdminBodyFailure Failure { get; }

    /// <summary>The problems found, by field.</summary>
    AdminErrors Errors { get; }

    /// <summary>The bound value, when there is one to validate.</summary>
    object? Value { get; }
}

/// <summary>
/// A request record bound from the JSON body. The body is read strictly (<see cref="AdminInput.ReadObjectAsync"/>:
/// content type, size, framing, duplicates, depth, invalid UTF-8 and unpaired surrogates anywhere), then each member is
/// deserialized on its own so that every member of the wrong type is named, then the record is validated
/// (<see cref="AdminValidation"/>). The handler only ever sees <see cref="Value"/> when all of that passed.
/// </summary>
internal sealed class AdminBody<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties | DynamicallyAccessedMemberTypes.PublicParameterlessConstructor)] T>
    : IAdminInput where T : class, new()
{
    private AdminBody(T? value, AdminBodyFailure failure, AdminErrors errors)
    {
        Value = value;
        Failure = failure;
        Errors = errors;
    }

    public T? Value { get; }

    public AdminBodyFailure Failure { get; }

    public AdminErrors Errors { get; }

    object? IAdminInput.Value => Value;

    public static async ValueTask<AdminBody<T>?> BindAsync(HttpContext context)
    {
        var errors = new AdminErrors();
        var (body, failure) = await AdminInput.ReadObjectAsync(context, errors);
        if (failure == AdminBodyFailure.ClientGone)
        {
            AdminApi.Log.ClientDisconnected(context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(AdminApi.LoggerCategory), context.Request.Method, context.Request.Path);
        }

        return new AdminBody<T>(body is { } root ? Read(root, errors) : null, failure, errors);
    }

    /// <summary>What the binder needs of each property of the record, read by reflection once per record type.</summary>
    private sealed record Member(PropertyInfo Property, string Name, string Requirement, bool Required, string ItemRequirement);

    private static readonly Member[] Members = [.. typeof(T).GetProperties().Select(static property =>
    {
        var name = AdminRecordType.JsonName(property);
        var requirement = property.GetCustomAttribute<System.ComponentModel.DescriptionAttribute>()?.Description ?? name;
        return new Member(property, name, requirement, property.IsDefined(typeof(JsonRequiredAttribute)),
            property.GetCustomAttribute<AdminRuleAttribute>()?.Requirement ?? requirement);
    })];

    /// <summary>Each member the record has, deserialized on its own; members it does not have are ignored.</summary>
    private static T Read(JsonElement root, AdminErrors errors)
    {
        var value = new T();
        foreach (var (property, name, requirement, required, itemRequirement) in Members)
        {
            if (!root.TryGetProperty(name, out var member))
            {
                if (required)
                {
                    errors.Add(name, $"Required: {requirement}.");
                }

                continue;
            }

            if (errors.Has(name) || member.ValueKind == JsonValueKind.Null)
            {
                continue;
            }

            if (property.PropertyType == typeof(string?[]))
            {
                property.SetValue(value, ReadList(member, name, requirement, itemRequirement, errors));
            }
            else if (TryDeserialize(member, property.PropertyType, out var item))
            {
                property.SetValue(value, item);
            }
            else
            {
                errors.Add(name, AdminInput.Must(requirement, member));
            }
        }

        return value;
    }

    /// <summary>A list of strings: each item that is not a string is named by its index and left null in the list.</summary>
    private static string?[]? ReadList(JsonElement member, string name, string requirement, string itemRequirement, AdminErrors errors)
    {
        if (member.ValueKind != JsonValueKind.Array)
        {
            errors.Add(name, AdminInput.Must(requirement, member));
            return null;
        }

        var items = new string?[member.GetArrayLength()];
        var index = 0;
        foreach (var item in member.EnumerateArray())
        {
            var field = $"{name}[{index}]";
            if (errors.Has(field))
            {
                // Not text: already named.
            }
            else if (item.ValueKind == JsonValueKind.String)
            {
                items[index] = item.GetString();
            }
            else
            {
                errors.Add(field, AdminInput.Must(itemRequirement, item));
            }

            index++;
        }

        return items;
    }

    /// <summary>The member as System.Text.Json reads the property's type; false for a value of another type.</summary>
    private static bool TryDeserialize(JsonElement member, Type type, out object? value)
    {
        try
        {
            value = member.Deserialize(AdminJsonContext.Default.GetTypeInfo(type)
                ?? throw new InvalidOperationException($"AdminJsonContext cannot read {type}."));
            return true;
        }
        catch (JsonException)
        {
            value = null;
            return false;
        }
    }
}

/// <summary>GET /accounts/{id}/ledger's query: <c>limit</c> (1 to 500, default 50) and <c>before</c> (a cursor), each at most once.</summary>
internal sealed class AdminLedgerQuery : IAdminInput
{
    private AdminLedgerQuery(int limit, long? before, AdminErrors errors)
    {
        Limit = limit;
        Before = before;
        Errors = errors;
    }

    public int Limit { get; }

    public long? Before { get; }

    public AdminErrors Errors { get; }

    public AdminBodyFailure Failure => AdminBodyFailure.None;

    object? IAdminInput.Value => null;

    public static ValueTask<AdminLedgerQuery?> BindAsync(HttpContext context)
    {
        var errors = new AdminErrors();
        var limit = AdminInput.Query(context.Request, "limit", static l => l is >= 1 and <= AdminInput.MaxLedgerPage, AdminInput.Limit, errors) ?? 50;
        var before = AdminInput.Query(context.Request, "before", static b => b > 0, AdminInput.Cursor, errors);
        return ValueTask.FromResult<AdminLedgerQuery?>(new AdminLedgerQuery((int)limit, before, errors));
    }
}

/// <summary>
/// The <c>window</c> query of the usage and traffic endpoints: <c>hour</c> (twelve buckets of five minutes, the default) or
/// <c>day</c> (24 buckets of an hour), given at most once.
/// </summary>
internal sealed class AdminWindowQuery : IAdminInput
{
    public const string Requirement = "hour or day";

    private AdminWindowQuery(string name, TimeSpan length, TimeSpan bucket, AdminErrors errors)
    {
        Name = name;
        Length = length;
        Bucket = bucket;
        Errors = errors;
    }

    /// <summary><c>hour</c> or <c>day</c>.</summary>
    public string Name { get; }

    public TimeSpan Length { get; }

    public TimeSpan Bucket { get; }

    public AdminErrors Errors { get; }

    public AdminBodyFailure Failure => AdminBodyFailure.None;

    object? IAdminInput.Value => null;

    /// <summary>
    /// The window that ends with the bucket holding <paramref name="now"/>, buckets aligned on whole multiples of their size
    /// (five minutes, an hour) since the Unix epoch: the last bucket is the current one, still filling.
    /// </summary>
    public (DateTimeOffset From, DateTimeOffset To) Aligned(DateTimeOffset now)
    {
        var to = DateTimeOffset.UnixEpoch + TimeSpan.FromTicks(Bucket.Ticks * (((now - DateTimeOffset.UnixEpoch).Ticks / Bucket.Ticks) + 1));
        return (to - Length, to);
    }

    public static ValueTask<AdminWindowQuery?> BindAsync(HttpContext context)
    {
        var errors = new AdminErrors();
        var values = context.Request.Query["window"];
        var name = values.Count == 0 ? "hour" : values[0];
        if (values.Count > 1)
        {
            errors.Add("window", $"Must be {Requirement}, given once (got it {values.Count.ToString(CultureInfo.InvariantCulture)} times).");
        }
        else if (name is not ("hour" or "day"))
        {
            errors.Add("window", $"Must be {Requirement} (got '{AdminInput.Truncate(name ?? "")}').");
        }

        var query = name == "day"
            ? new AdminWindowQuery("day", TimeSpan.FromDays(1), TimeSpan.FromHours(1), errors)
            : new AdminWindowQuery("hour", TimeSpan.FromHours(1), TimeSpan.FromMinutes(5), errors);
        return ValueTask.FromResult<AdminWindowQuery?>(query);
    }
}
