using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text.Json;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace McpGuard.Admin;

/// <summary>The problems found in one admin request, by field (snake_case, as the client wrote it).</summary>
internal sealed class AdminErrors
{
    private readonly Dictionary<string, List<string>> _errors = new(StringComparer.Ordinal);

    public bool Any => _errors.Count > 0;

    /// <summary>Whether <paramref name="field"/> already has a problem (its value is then not read again).</summary>
    public bool Has(string field) => _errors.ContainsKey(field);

    public void Add(string field, string message)
    {
        if (!_errors.TryGetValue(field, out var messages))
        {
            _errors[field] = messages = [];
        }

        messages.Add(message);
    }

    /// <summary>Adds every problem of <paramref name="other"/>.</summary>
    public void Add(AdminErrors other)
    {
        foreach (var (field, messages) in other._errors)
        {
            foreach (var message in messages)
            {
                Add(field, message);
            }
        }
    }

    public Dictionary<string, string[]> ToDictionary() => _errors.ToDictionary(e => e.Key, e => e.Value.ToArray(), StringComparer.Ordinal);
}

/// <summary>Why a body could not be read at all (before any field is looked at).</summary>
internal enum AdminBodyFailure
{
    None,
    UnsupportedMediaType,
    TooLarge,

    /// <summary>The body arrived more slowly than the server's minimum data rate.</summary>
    TooSlow,

    /// <summary>The client went away before the body was read: there is nobody to answer.</summary>
    ClientGone,
}

/// <summary>
/// Reads admin input before it is bound: the JSON body (an object, at most 64 KiB, no duplicate members, at most 16 deep,
/// only valid text) and the query values. Every problem is collected, so a 400 names each bad field at once. Nothing a
/// client sends makes a reader throw: bad input is always a problem named in the answer. Binding the fields to the
/// request records and their rules is <see cref="AdminBody{T}"/>'s and <see cref="AdminValidation"/>'s.
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
    public const string MaxPrice = "the most one call made with the key may cost: a whole number of micro-units, 0 or more, or null for no ceiling";
    public const string AccountId = "an account id: 1 to 200 characters, no control characters";
    public const string KeyId = "a key id: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit";
    public const string Scopes = "an array of scope tokens";
    public const string ScopeToken = "a scope token: printable ASCII without spaces, quotes, backslashes or commas";
    public const string ExpiresAt = "a time in the future with a time zone, like 2030-01-01T00:00:00Z, or null";
    public const string Limit = "a whole number from 1 to 500";
    public const string Cursor = "a ledger row id from next_cursor (a whole number greater than 0)";
    public const string NotValidJson = "Must be a JSON object: the body is not valid JSON (or repeats a member).";
    public const string BadMemberName = "Must be a JSON object whose member names are valid text: UTF-8, with no unpaired surrogate escape such as \\ud800.";
    public const string InvalidText = "Must hold only valid text: UTF-8, with no unpaired surrogate escape such as \\ud800.";
    public const string BrokenFraming = "Must be a JSON object: the body could not be read; its chunked encoding or Content-Length is broken.";

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
        ReadResult read;
        try
        {
            // No cancellation token: a client that leaves ends the read anyway, the same way every time.
            read = await reader.ReadAtLeastAsync(MaxBodyBytes + 1, CancellationToken.None);
        }
        catch (Exception ex) when (Protocol.ClientDisconnect.Caused(ex, context))
        {
            // Nobody is left to answer; aborting also stops the server from draining a body that will never arrive.
            context.Abort();
            return (null, AdminBodyFailure.ClientGone);
        }
        catch (IOException ex)
        {
            // The server refused the body while it was read (a BadHttpRequestException saying why, or a bare
            // IOException for a chunk size that overflows): the client's framing, not our failure.
            switch ((ex as BadHttpRequestException)?.StatusCode)
            {
                case StatusCodes.Status413PayloadTooLarge:
                    return (null, AdminBodyFailure.TooLarge);
                case StatusCodes.Status408RequestTimeout:
                    return (null, AdminBodyFailure.TooSlow);
                default:
                    errors.Add("body", BrokenFraming);
                    return (null, AdminBodyFailure.None);
            }
        }

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

        JsonElement root;
        try
        {
            using var document = JsonDocument.Parse(bytes, DocumentOptions);
            root = document.RootElement.Clone();
        }
        catch (JsonException)
        {
            errors.Add("body", NotValidJson);
            return (null, AdminBodyFailure.None);
        }
        catch (InvalidOperationException)
        {
            // Looking for repeated members decodes every member name; one that is not valid text cannot be decoded.
            errors.Add("body", BadMemberName);
            return (null, AdminBodyFailure.None);
        }

        if (root.ValueKind != JsonValueKind.Object)
        {
            errors.Add("body", $"Must be a JSON object (got {Describe(root)}).");
            return (null, AdminBodyFailure.None);
        }

        CheckText(root, errors);
        return (root, AdminBodyFailure.None);
    }

    /// <summary>
    /// The JSON reader accepts strings that are not text: invalid UTF-8, or a <c>\u</c> escape that leaves an unpaired
    /// surrogate. Names each member that holds one anywhere in its value (<c>scopes[i]</c> for an item of a top-level
    /// array), and <c>body</c> for a member name that is one, so that no reader ever decodes them.
    /// </summary>
    private static void CheckText(JsonElement root, AdminErrors errors)
    {
        foreach (var member in root.EnumerateObject())
        {
            if (!IsText(member))
            {
                if (!errors.Has("body"))
                {
                    errors.Add("body", BadMemberName);
                }

                continue;
            }

            var name = member.Name;
            if (member.Value.ValueKind == JsonValueKind.Array)
            {
                var index = 0;
                foreach (var item in member.Value.EnumerateArray())
                {
                    if (!HoldsOnlyText(item))
                    {
                        errors.Add($"{name}[{index.ToString(CultureInfo.InvariantCulture)}]", InvalidText);
                    }

                    index++;
                }
            }
            else if (!HoldsOnlyText(member.Value))
            {
                errors.Add(name, InvalidText);
            }
        }
    }

    private static bool HoldsOnlyText(JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.String:
                return JsonText.IsText(value);
            case JsonValueKind.Array:
                foreach (var item in value.EnumerateArray())
                {
                    if (!HoldsOnlyText(item))
                    {
                        return false;
                    }
                }

                return true;
            case JsonValueKind.Object:
                foreach (var member in value.EnumerateObject())
                {
                    if (!IsText(member) || !HoldsOnlyText(member.Value))
                    {
                        return false;
                    }
                }

                return true;
            default:
                return true;
        }
    }


    private static bool IsText(JsonProperty member)
    {
        try
        {
            _ = member.Name;
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>A time with an explicit zone (<c>Z</c> or an offset) that is a real date and fits in UTC; <paramref name="time"/> is in UTC.</summary>
    public static bool TryParseTime(string text, out DateTimeOffset time)
    {
        if (DateTime.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var parsed)
            && parsed.Kind != DateTimeKind.Unspecified
            && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out var local))
        {
            time = local.ToUniversalTime();
            return true;
        }

        time = default;
        return false;
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

    /// <summary>The message for a value that is there but wrong.</summary>
    public static string Must(string requirement, JsonElement value) => $"Must be {requirement} (got {Describe(value)}).";

    /// <summary>A short description of a JSON value for an error message.</summary>
    public static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.String => JsonText.IsText(value) ? $"\"{Truncate(value.GetString() ?? "")}\"" : "a string that is not valid text",
        JsonValueKind.Number => Truncate(value.GetRawText()),
        JsonValueKind.True => "true",
        JsonValueKind.False => "false",
        JsonValueKind.Null => "null",
        JsonValueKind.Array => "an array",
        JsonValueKind.Object => "an object",
        _ => "nothing",
    };

    public static string Truncate(string value) => value.Length <= 40 ? value : string.Concat(value.AsSpan(0, 40), "…");
}
