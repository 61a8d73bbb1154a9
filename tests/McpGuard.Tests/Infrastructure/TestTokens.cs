using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace McpGuard.Tests.Infrastructure;

/// <summary>
/// Mints JWTs for the sample's development issuer (samples/McpGuard.Sample/appsettings.json: McpGuard:Auth:Jwt),
/// and the bad variants a guard must refuse.
/// </summary>
public static class TestTokens
{
    public const string SigningKey = "8lcnonI8W4kiLAR0s4LgCOLGgIGqbZqsULCDAYn0jxM=";

    /// <summary>Another 32-byte key: a token signed with it has a bad signature.</summary>
    public const string OtherSigningKey = "3q2+7wAAAAD/////AAAAAP////8AAAAA/////wAAAAA=";

    public const string Issuer = "http://127.0.0.1:5080/dev-issuer";

    public const string Audience = "http://127.0.0.1:5080/mcp";

    /// <summary>The sample's configuration overrides that turn JWTs on (API keys stay on).</summary>
    public static Dictionary<string, string?> JwtEnabled() => new() { ["McpGuard:Auth:Jwt:Enabled"] = "true" };

    /// <summary>
    /// A signed HS256 token. Times default to "issued a minute before <paramref name="now"/> (or the system clock), valid for an hour".
    /// <paramref name="scope"/> is the space-separated <c>scope</c> claim; <paramref name="scp"/>, when given, an <c>scp</c> claim written as a JSON array.
    /// </summary>
    public static string Create(
        string? subject = "alice",
        string? scope = "tools:basic",
        string[]? scp = null,
        string? issuer = Issuer,
        string? audience = Audience,
        DateTimeOffset? now = null,
        TimeSpan? lifetime = null,
        DateTimeOffset? notBefore = null,
        string signingKey = SigningKey)
    {
        var issued = (now ?? TimeProvider.System.GetUtcNow()).AddMinutes(-1);
        var claims = new Dictionary<string, object>(StringComparer.Ordinal);
        if (subject is not null)
        {
            claims["sub"] = subject;
        }

        if (scope is not null)
        {
            claims["scope"] = scope;
        }

        if (scp is not null)
        {
            claims["scp"] = scp;
        }

        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = audience,
            Claims = claims,
            IssuedAt = issued.UtcDateTime,
            NotBefore = (notBefore ?? issued).UtcDateTime,
            Expires = issued.Add(lifetime ?? TimeSpan.FromHours(1)).UtcDateTime,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Convert.FromBase64String(signingKey)), SecurityAlgorithms.HmacSha256),
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }

    /// <summary>A token that expired ten minutes ago (well past the default 30 s clock skew).</summary>
    public static string Expired(DateTimeOffset? now = null) =>
        Create(now: (now ?? TimeProvider.System.GetUtcNow()).AddHours(-1).AddMinutes(-9), lifetime: TimeSpan.FromHours(1));

    /// <summary>
    /// An unsigned token (<c>alg: none</c>, empty signature) with otherwise perfect claims, built by hand
    /// because no respectable library will mint one.
    /// </summary>
    public static string AlgNone(string subject = "alice", string scope = "tools:basic tools:premium")
    {
        var now = TimeProvider.System.GetUtcNow().ToUnixTimeSeconds();
        var header = Base64Url("""{"alg":"none","typ":"JWT"}""");
        var payload = Base64Url(JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["iss"] = Issuer,
            ["aud"] = Audience,
            ["sub"] = subject,
            ["scope"] = scope,
            ["iat"] = now - 60,
            ["nbf"] = now - 60,
            ["exp"] = now + 3600,
        }));
        return $"{header}.{payload}.";
    }

    /// <summary>
    /// A token signed (HS256, with <paramref name="signingKey"/>) over exactly the JSON text given for its header and
    /// payload, built by hand: for the members and types no token library will write.
    /// </summary>
    public static string SignedJson(string header, string payload, string signingKey = SigningKey)
    {
        var input = $"{Base64Url(header)}.{Base64Url(payload)}";
        var signature = System.Security.Cryptography.HMACSHA256.HashData(Convert.FromBase64String(signingKey), Encoding.ASCII.GetBytes(input));
        return $"{input}.{System.Buffers.Text.Base64Url.EncodeToString(signature)}";
    }

    /// <summary>The header of a good HS256 token, as JSON text.</summary>
    public const string Hs256Header = """{"alg":"HS256","typ":"JWT"}""";

    /// <summary>
    /// The payload of a good token for alice (tools:basic, valid for an hour) as JSON text, with <paramref name="members"/>
    /// replacing members of the same name or added after them, their values written verbatim; a null value removes the member.
    /// </summary>
    public static string PayloadJson(params (string Name, string? Json)[] members)
    {
        var now = TimeProvider.System.GetUtcNow().ToUnixTimeSeconds();
        var claims = new List<(string Name, string? Json)>
        {
            ("iss", JsonSerializer.Serialize(Issuer)),
            ("aud", JsonSerializer.Serialize(Audience)),
            ("sub", "\"alice\""),
            ("scope", "\"tools:basic\""),
            ("iat", (now - 60).ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("nbf", (now - 60).ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("exp", (now + 3600).ToString(System.Globalization.CultureInfo.InvariantCulture)),
        };
        foreach (var (name, json) in members)
        {
            var at = claims.FindIndex(c => c.Name == name);
            if (at >= 0)
            {
                claims[at] = (name, json);
            }
            else
            {
                claims.Add((name, json));
            }
        }

        return "{" + string.Join(",", claims.Where(c => c.Json is not null).Select(c => $"{JsonSerializer.Serialize(c.Name)}:{c.Json}")) + "}";
    }

    /// <summary>The signature segment of a compact JWT.</summary>
    public static string SignatureOf(string token) => token[(token.LastIndexOf('.') + 1)..];

    private static string Base64Url(string json) => System.Buffers.Text.Base64Url.EncodeToString(Encoding.UTF8.GetBytes(json));
}
