using System.Buffers.Text;
using System.Text.Json;
using McpGuard.Protocol;
using Microsoft.IdentityModel.JsonWebTokens;

namespace McpGuard.Auth;

/// <summary>
/// What McpGuard asks of a token that IdentityModel has validated: the account claim is one JSON string, <c>exp</c>
/// and <c>nbf</c> are JSON numbers, the header names no <c>crit</c> parameter (McpGuard understands none, so only an
/// absent or empty <c>crit</c> passes, RFC 7515 §4.1.11), and neither header nor payload repeats a member.
/// IdentityModel alone reads a numeric <c>sub</c> as its digits, an <c>exp</c> or <c>nbf</c> written as a string as
/// the number in it, ignores <c>crit</c>, and takes the last of repeated members, so each of those tokens would pass.
/// </summary>
internal static class JwtContentRules
{
    private static readonly JsonDocumentOptions Strict = new() { AllowDuplicateProperties = false };

    /// <summary>Why the token is refused (for the log: names of claims, never their values), or null when it passes.</summary>
    public static string? Refusal(JsonWebToken token, string accountClaim)
    {
        for (var layer = token; layer is not null; layer = layer.InnerToken)
        {
            if (HeaderRefusal(layer.EncodedHeader) is { } header)
            {
                return header;
            }
        }

        return PayloadRefusal((token.InnerToken ?? token).EncodedPayload, accountClaim);
    }

    private static string? HeaderRefusal(string encoded)
    {
        using var header = Parse(encoded);
        if (header is null)
        {
            return "the header is not a JSON object without repeated members";
        }

        if (!header.RootElement.TryGetProperty("crit", out var crit))
        {
            return null;
        }

        if (crit.ValueKind != JsonValueKind.Array || crit.EnumerateArray().Any(name => name.ValueKind != JsonValueKind.String))
        {
            return "'crit' is not an array of strings";
        }

        return crit.GetArrayLength() == 0 ? null : "a 'crit' header parameter McpGuard does not understand";
    }

    private static string? PayloadRefusal(string encoded, string accountClaim)
    {
        using var payload = Parse(encoded);
        if (payload is null)
        {
            return "the payload is not a JSON object without repeated members";
        }

        var claims = payload.RootElement;
        if (claims.TryGetProperty(accountClaim, out var account))
        {
            if (account.ValueKind != JsonValueKind.String)
            {
                return $"'{accountClaim}' is not a JSON string";
            }

            if (!JsonText.IsText(account))
            {
                return $"'{accountClaim}' is not valid text";
            }
        }

        foreach (var time in (ReadOnlySpan<string>)["exp", "nbf"])
        {
            if (claims.TryGetProperty(time, out var value) && value.ValueKind != JsonValueKind.Number)
            {
                return $"'{time}' is not a JSON number";
            }
        }

        return null;
    }

    /// <summary>The decoded JSON object, or null when it is not one (or repeats a member).</summary>
    private static JsonDocument? Parse(string encoded)
    {
        JsonDocument? document = null;
        try
        {
            document = JsonDocument.Parse(Base64Url.DecodeFromChars(encoded), Strict);
            if (document.RootElement.ValueKind == JsonValueKind.Object)
            {
                return document;
            }
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException)
        {
            // Not base64url, not JSON, or a repeated member name that is not even text.
        }

        document?.Dispose();
        return null;
    }

}

/// <summary>A validated token that <see cref="JwtContentRules"/> refused; the message says why and never holds the token.</summary>
internal sealed class JwtContentRefusedException(string reason) : Exception(reason);
