using System.Security.Cryptography;
using System.Text;

namespace McpGuard;

/// <summary>Creates API keys and the hashes configuration stores instead of them.</summary>
public static class McpGuardApiKeys
{
    /// <summary>Creates a new random key, <c>&lt;prefix&gt;_&lt;43 URL-safe characters&gt;</c> (256 bits), and its hash.</summary>
    public static (string Key, string Hash) Generate(string prefix = "mcpg")
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(prefix);
        Span<byte> secret = stackalloc byte[32];
        RandomNumberGenerator.Fill(secret);
        var key = $"{prefix}_{System.Buffers.Text.Base64Url.EncodeToString(secret)}";
        return (key, Hash(key));
    }

    /// <summary>The lowercase hex SHA-256 of the whole key (UTF-8): what <c>Keys[].Hash</c> holds.</summary>
    public static string Hash(string key)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
    }
}
