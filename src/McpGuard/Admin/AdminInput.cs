using System.Buffers;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace McpGuard.Admin;

/// <summary>The problems found in one admin request, by field (snake_case, as the client wrote it).</summary>
internal sealed class AdminErrors
{
    private readonly Dictionary<string, List<string>> _errors = new(StringComparer.Ordinal);

    public bool Any => _errors.Count > 0;

    public void Add(string field, string message)
    {
        if (!_errors.TryGetValue(field, out var messages))
        {
            _errors[field] = messages = [];
        }

        messages.Add(message);
    }

    public Dictionary<string, string[]> ToDictionary() => _errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);
}

/// <summary>Why a body could not be read at all (before any field is looked at).</summary>
internal enum AdminBodyFailure
{
    None,
    UnsupportedMediaType,
    TooLarge,
}

/// <summary>
/// Reads and checks admin input: the JSON body (an object, at most 64 KiB, no duplicate members), its fields and
/// the route and query values. Every problem is collected, so a 400 names each bad field at once.
/// </summary>
internal static class AdminInput
{
    public const int MaxBodyBytes = 64 * 1024;
    public const int MaxNoteLength = 500;
    public const int MaxAccountLength = 200;
    public const int MaxKeyIdLength = 64;
    public const int MaxLedgerPage = 500;

    public const string PositiveAmount = "a whole number of micro-units greater than 0";
    public const string NonZeroAmount = "a whole number of micro-units other than 0";
    public const string OptionalNote = "a string of at most 500 characters, or null";
    public const string RequiredNote = "a non-empty string of at most 500 characters saying why";
    public const string Cap = "a whole number of micro-units, 0 or more, or null for no cap";
    public const string AccountId = "an account id: 1 to 200 characters, no control characters";
    public const string KeyId = "a key id: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit";
    public const string Scopes = "an array of scope tokens";
    public const string ScopeToken = "a scope token: printable ASCII without spaces, quotes, backslashes or commas";
    public const string ExpiresAt = "a time in the future with a time zone, like 2030-01-01T00:00:00Z, or null";
    public const string Limit = "a whole number from 1 to 500";
    public const string Cursor = "a ledger row id from next_cursor (a whole number greater than 0)";

    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 16, AllowDuplicateProperties = false };

    /// <summary>
    /// Reads the body as one JSON object. Returns the object (cloned, so it outlives the request buffer), or null with
    /// the problem added to <paramref name="errors"/> under <c>body</c>, or a failure that is not a field problem.
    /// </summary>
    public static async Task<(JsonElement? Body, AdminBodyFailure Failure)> ReadObjectAsync(HttpContext context, AdminErrors errors)
    {
        var request = context.Request;
        if (!MediaTypeHeaderValue.TryParse(request.ContentType, out var mediaType)
            || !(mediaType.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
                || mediaType.Suffix.Equals("json", StringComparison.OrdinalIgnoreCase)))
        {
            return (null, AdminBodyFailure.UnsupportedMediaType);
        }

        if (request.ContentLength > MaxBodyBytes)
        {
            return (null, AdminBodyFailure.TooLarge);
        }

        byte[] bytes;
        var reader = request.BodyReader;
        var read = await reader.ReadAtLeastAsync(MaxBodyBytes + 1, context.RequestAborted);
        try
        {
            if (read.Buffer.Length > MaxBodyBytes)
            {
                return (null, AdminBodyFailure.TooLarge);
            }

            bytes = read.Buffer.ToArray();
        }
        finally
        {
            reader.AdvanceTo(read.Buffer.End);
        }

        if (bytes.Length == 0)
        {
            errors.Add("body", "Required: a JSON object.");
            return (null, AdminBodyFailure.None);
        }

        try
        {
            using var document = JsonDocument.Parse(bytes, DocumentOptions);
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                errors.Add("body", $"Must be a JSON object (got {Describe(document.RootElement)}).");
                return (null, AdminBodyFailure.None);
            }

            return (document.RootElement.Clone(), AdminBodyFailure.None);
        }
        catch (JsonException)
        {
            errors.Add("body", "Must be a JSON object: the body is not valid JSON (or repeats a member).");
            return (null, AdminBodyFailure.None);
        }
    }

    /// <summary>A required whole number that <paramref name="valid"/> accepts; null (and an error) otherwise.</summary>
    public static long? RequiredLong(JsonElement? body, string name, Func<long, bool> valid, string requirement, AdminErrors errors)
    {
        if (body is not { } root)
        {
            return null;
        }

        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            errors.Add(name, $"Required: {requirement}.");
            return null;
        }

        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) && valid(number))
        {
            return number;
        }

        errors.Add(name, Must(requirement, value));
        return null;
    }

    /// <summary>A member that must be present, whose value is a whole number <paramref name="valid"/> accepts or null.</summary>
    public static (bool Ok, long? Value) RequiredNullableLong(JsonElement? body, string name, Func<long, bool> valid, string requirement, AdminErrors errors)
    {
        if (body is not { } root)
        {
            return (false, null);
        }

        if (!root.TryGetProperty(name, out var value))
        {
            errors.Add(name, $"Required: {requirement}.");
            return (false, null);
        }

        if (value.ValueKind == JsonValueKind.Null)
        {
            return (true, null);
        }

        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var number) && valid(number))
        {
            return (true, number);
        }

        errors.Add(name, Must(requirement, value));
        return (false, null);
    }

    /// <summary>A string member; absent or null is <c>null</c> (an error when <paramref name="required"/>).</summary>
    public static string? String(JsonElement? body, string name, bool required, Func<string, bool> valid, string requirement, AdminErrors errors)
    {
        if (body is not { } root)
        {
            return null;
        }

        if (!root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            if (required)
            {
                errors.Add(name, $"Required: {requirement}.");
            }

            return null;
        }

        if (value.ValueKind == JsonValueKind.String && value.GetString() is { } text && valid(text))
        {
            return text;
        }

        errors.Add(name, Must(requirement, value));
        return null;
    }

    /// <summary>The <c>scopes</c> array: each item a scope token; duplicates are dropped, order kept.</summary>
    public static string[]? ScopeList(JsonElement? body, AdminErrors errors)
    {
        const string Name = "scopes";
        if (body is not { } root)
        {
            return null;
        }

        if (!root.TryGetProperty(Name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            errors.Add(Name, $"Required: {Scopes}.");
            return null;
        }

        if (value.ValueKind != JsonValueKind.Array)
        {
            errors.Add(Name, Must(Scopes, value));
            return null;
        }

        var scopes = new List<string>();
        var index = 0;
        var ok = true;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind == JsonValueKind.String && item.GetString() is { } scope && Auth.AuthOptionsValidation.IsScopeToken(scope))
            {
                if (!scopes.Contains(scope, StringComparer.Ordinal))
                {
                    scopes.Add(scope);
                }
            }
            else
            {
                errors.Add($"{Name}[{index.ToString(CultureInfo.InvariantCulture)}]", Must(ScopeToken, item));
                ok = false;
            }

            index++;
        }

        return ok ? [.. scopes] : null;
    }

    /// <summary>An optional time with an explicit zone, later than <paramref name="now"/>.</summary>
    public static (bool Ok, DateTimeOffset? Value) FutureTime(JsonElement? body, string name, DateTimeOffset now, AdminErrors errors)
    {
        if (body is not { } root || !root.TryGetProperty(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return (true, null);
        }

        if (value.ValueKind == JsonValueKind.String && value.GetString() is { } text
            && DateTime.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var parsed)
            && parsed.Kind != DateTimeKind.Unspecified
            && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out var time)
            && time > now)
        {
            return (true, time.ToUniversalTime());
        }

        errors.Add(name, Must(ExpiresAt, value));
        return (false, null);
    }

    /// <summary>A query value that must appear at most once and parse as a whole number <paramref name="valid"/> accepts.</summary>
    public static long? Query(HttpRequest request, string name, Func<long, bool> valid, string requirement, AdminErrors errors)
    {
        var values = request.Query[name];
        if (values.Count == 0)
        {
            return null;
        }

        if (values.Count == 1 && long.TryParse(values[0], NumberStyles.None, CultureInfo.InvariantCulture, out var number) && valid(number))
        {
            return number;
        }

        errors.Add(name, values.Count == 1
            ? $"Must be {requirement} (got '{Truncate(values[0] ?? "")}')."
            : $"Must be {requirement}, given once (got it {values.Count.ToString(CultureInfo.InvariantCulture)} times).");
        return null;
    }

    public static bool IsAccountId(string value) =>
        value.Length is > 0 and <= MaxAccountLength && !value.Any(char.IsControl) && !string.IsNullOrWhiteSpace(value);

    public static bool IsKeyId(string value) =>
        value.Length is > 0 and <= MaxKeyIdLength && char.IsAsciiLetterOrDigit(value[0])
        && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    public static bool IsNote(string value) => value.Length <= MaxNoteLength;

    public static bool IsRequiredNote(string value) => value.Length <= MaxNoteLength && !string.IsNullOrWhiteSpace(value);

    /// <summary>The message for a value that is there but wrong.</summary>
    public static string Must(string requirement, JsonElement value) => $"Must be {requirement} (got {Describe(value)}).";

    /// <summary>A short description of a JSON value for an error message.</summary>
    public static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => $"\"{Truncate(value.GetString() ?? "")}\"",
        JsonValueKind.Number => Truncate(value.GetRawText()),
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.Null => "null",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => "nothing",
    };

    private static string Truncate(string value) => value.Length <= 40 ? value : string.Concat(value.AsSpan(0, 40), "…");
}
