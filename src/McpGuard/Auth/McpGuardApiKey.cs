using System.Security.Cryptography;
using System.Text;

namespace McpGuard;

/// <summary>An API key as a store knows it: never the secret, only what the key grants.</summary>
/// <param name="id">A stable id for logs and admin.</param>
/// <param name="account">The billing party the key belongs to.</param>
/// <param name="scopes">The scopes the key grants.</param>
/// <param name="expiresAt">When the key stops working, if ever.</param>
/// <param name="revoked">A revoked key never works again.</param>
/// <param name="maxPriceMicro">The most one call made with the key may cost, if it has a ceiling.</param>
public sealed class McpGuardApiKey(string id, string account, IReadOnlyList<string> scopes, DateTimeOffset? expiresAt = null, bool revoked = false, long? maxPriceMicro = null)
{
    /// <summary>A stable id for logs and admin.</summary>
    public string Id { get; } = id;

    /// <summary>The billing party the key belongs to.</summary>
    public string Account { get; } = account;

    /// <summary>The scopes the key grants.</summary>
    public IReadOnlyList<string> Scopes { get; } = scopes;

    /// <summary>When the key stops working, if ever.</summary>
    public DateTimeOffset? ExpiresAt { get; } = expiresAt;

    /// <summary>A revoked key never works again.</summary>
    public bool Revoked { get; } = revoked;

    /// <summary>
    /// The most a single call made with the key may cost (a metered call: its maximum); a call priced above it is refused
    /// with <c>price_above_limit</c>. A call's own <c>mcpguard/max_price_micro</c> can lower it, never raise it.
    /// </summary>
    public long? MaxPriceMicro { get; } = maxPriceMicro;

    /// <summary>
    /// Creates a new random key, <c>&lt;prefix&gt;_&lt;43 URL-safe characters&gt;</c> (256 bits), and its hash: hand the key
    /// to its owner once, keep only the hash (<c>Auth:ApiKeys:Keys[].Hash</c>).
    /// </summary>
    public static (string Key, string Hash) Generate(string prefix = "mcpg")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(prefix);
        Span<byte> secret = stackalloc byte[32];
        RandomNumberGenerator.Fill(secret);
        var key = $"{prefix}_{System.Buffers.Text.Base64Url.EncodeToString(secret)}";
        return (key, Hash(key));
    }

    /// <summary>The lowercase hex SHA-256 of the whole key (UTF-8): what <c>Auth:ApiKeys:Keys[].Hash</c> holds.</summary>
    public static string Hash(string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
    }

    /// <summary>This key, revoked.</summary>
    internal McpGuardApiKey AsRevoked() => new(Id, Account, Scopes, ExpiresAt, revoked: true, MaxPriceMicro);
}
