#pragma warning disable ASP0029 // Microsoft.Extensions.Validation's resolver types are marked experimental in .NET 10.
using System.Collections.Concurrent;
using System.ComponentModel.DataAnnotations;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Validation;

namespace McpGuard.Admin;

/// <summary>
/// Runs Microsoft.Extensions.Validation on the admin request records, explicitly, from the admin endpoints' own filter.
/// McpGuard does not call <c>services.AddValidation()</c>: that registers the validation endpoint filter for every minimal
/// API endpoint whose parameters it can resolve, so it would start validating the app's own endpoints (and answering for
/// them). Instead the admin API keeps its own <see cref="ValidationOptions"/>, with a resolver that knows only the admin
/// request records, and turns the errors into the admin API's 400 itself, next to the errors found while binding.
/// </summary>
internal static class AdminValidation
{
    private static readonly ValidationOptions Options = CreateOptions();

    /// <summary>Validates <paramref name="value"/>, adding each problem to <paramref name="errors"/> under its JSON name (<c>scopes[1]</c>).</summary>
    public static async Task ValidateAsync(object value, IServiceProvider services, AdminErrors errors, CancellationToken cancellationToken)
    {
        if (!Options.TryGetValidatableTypeInfo(value.GetType(), out var info))
        {
            throw new InvalidOperationException($"{value.GetType().Name} is not an admin request record.");
        }

        var context = new ValidateContext
        {
            ValidationOptions = Options,
            ValidationContext = new ValidationContext(value, services, items: null),
        };
        await info.ValidateAsync(value, context, cancellationToken);
        foreach (var (key, messages) in context.ValidationErrors ?? [])
        {
            // A field the binder already refused (wrong type, not text) keeps that one problem.
            var field = AdminRecordType.JsonPath(value.GetType(), key);
            if (!errors.Has(field))
            {
                foreach (var message in messages)
                {
                    errors.Add(field, message);
                }
            }
        }
    }

    private static ValidationOptions CreateOptions()
    {
        var options = new ValidationOptions();
        options.Resolvers.Clear();
        options.Resolvers.Add(new RecordResolver());
        return options;
    }

    /// <summary>Type information for the admin request records only, read once from their attributes.</summary>
    private sealed class RecordResolver : IValidatableInfoResolver
    {
        private readonly ConcurrentDictionary<Type, IValidatableInfo?> _types = new();

        public bool TryGetValidatableTypeInfo(Type type, [NotNullWhen(true)] out IValidatableInfo? validatableInfo)
        {
            validatableInfo = _types.GetOrAdd(type, static t => AdminRecordType.IsRequestRecord(t) ? Create(t) : null);
            return validatableInfo is not null;
        }

        public bool TryGetValidatableParameterInfo(ParameterInfo parameterInfo, [NotNullWhen(true)] out IValidatableInfo? validatableInfo)
        {
            validatableInfo = null;
            return false;
        }

        private static RecordTypeInfo Create([DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)] Type type) =>
            new(type, [.. type.GetProperties().Select(p => new RecordPropertyInfo(type, p))]);
    }

    private sealed class RecordTypeInfo(Type type, IReadOnlyList<ValidatablePropertyInfo> members) : ValidatableTypeInfo(type, members)
    {
        protected override ValidationAttribute[] GetValidationAttributes() => [];
    }

    /// <summary>A property's DataAnnotations attributes; for a list of scope tokens, each item checked too.</summary>
    private sealed class RecordPropertyInfo(
        [DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)] Type declaringType,
        PropertyInfo property)
        : ValidatablePropertyInfo(declaringType, property.PropertyType, property.Name, property.Name)
    {
        private readonly ValidationAttribute[] _attributes = [.. property.GetCustomAttributes<ValidationAttribute>()];

        protected override ValidationAttribute[] GetValidationAttributes() => _attributes;

        public override async Task ValidateAsync(object? value, ValidateContext context, CancellationToken cancellationToken)
        {
            await base.ValidateAsync(value, context, cancellationToken);
            if (_attributes.OfType<ScopeTokensAttribute>().FirstOrDefault() is not { } rule || property.GetValue(value) is not string?[] items)
            {
                return;
            }

            for (var index = 0; index < items.Length; index++)
            {
                if (!ScopeTokensAttribute.IsItemValid(items[index]))
                {
                    var key = $"{property.Name}[{index}]";
                    context.ValidationErrors ??= [];
                    context.ValidationErrors[key] = [AdminRuleAttribute.Must(rule.Requirement, items[index]!)];
                }
            }
        }
    }
}

/// <summary>What binding and validation need to know about a request record: its JSON member names.</summary>
internal static class AdminRecordType
{
    public static bool IsRequestRecord(Type type) =>
        type == typeof(TopUpRequest) || type == typeof(AdjustRequest) || type == typeof(SetCapRequest) || type == typeof(CreateKeyRequest);

    /// <summary>The JSON name of a property (its <see cref="JsonPropertyNameAttribute"/>).</summary>
    public static string JsonName(PropertyInfo property) =>
        property.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name
        ?? throw new InvalidOperationException($"{property.DeclaringType?.Name}.{property.Name} has no JSON name.");

    /// <summary>A validation key (<c>Scopes[1]</c>) as the client wrote the field (<c>scopes[1]</c>).</summary>
    public static string JsonPath([DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicProperties)] Type type, string key)
    {
        var bracket = key.IndexOf('[', StringComparison.Ordinal);
        var name = bracket < 0 ? key : key[..bracket];
        return type.GetProperty(name) is { } property ? JsonName(property) + (bracket < 0 ? "" : key[bracket..]) : key;
    }
}
