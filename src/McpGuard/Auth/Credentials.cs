using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace McpGuard.Auth;

/// <summary>
/// Presented credentials (API keys, the admin key), read and hashed one way everywhere: the <c>Bearer</c> token of
/// the request, and its SHA-256, which is what configuration and the ledger store instead of the key. Encoded on the
/// stack (a pooled buffer for long ones) and wiped after.
/// </summary>
internal static class Credentials
{
    /// <summary>Longer credentials are refused without hashing them.</summary>
    public const int MaxLength = 8192;

    private const int StackLimit = 256;

    private const string BearerPrefix = "Bearer ";

    /// <summary>SHA-256 of the credential's UTF-8 bytes into <paramref name="hash"/>; false, and nothing hashed, when it is longer than <see cref="MaxLength"/>.</summary>
    public static bool TryHash(ReadOnlySpan<char> credential, Span<byte> hash)
    {
        if (credential.Length > MaxLength)
        {
            return false;
        }

        var byteCount = Encoding.UTF8.GetMaxByteCount(credential.Length);
        var rented = byteCount > StackLimit ? ArrayPool<byte>.Shared.Rent(byteCount) : null;
        var bytes = rented is null ? stackalloc byte[StackLimit] : rented.AsSpan();
        var length = Encoding.UTF8.GetBytes(credential, bytes);
        SHA256.HashData(bytes[..length], hash);
        CryptographicOperations.ZeroMemory(bytes[..length]);
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }

        return true;
    }

    /// <summary>
    /// The token of the request's one <c>Authorization: Bearer</c> header, trimmed: a slice of the header, no copy. False
    /// when there is no such header (or more than one); true with an empty token for <c>Bearer</c> and nothing after it.
    /// </summary>
    public static bool TryReadBearer(HttpRequest request, out ReadOnlyMemory<char> token)
    {
        var authorization = request.Headers.Authorization;
        if (authorization.Count == 1 && authorization[0] is { } value && value.StartsWith(BearerPrefix, StringComparison.OrdinalIgnoreCase))
        {
            token = value.AsMemory(BearerPrefix.Length).Trim();
            return true;
        }

        token = default;
        return false;
    }

    /// <summary>Whether <paramref name="value"/> is a SHA-256 as configuration stores it: 64 lowercase hex digits.</summary>
    public static bool IsSha256Hex(string value) => value.Length == 64 && value.All(char.IsAsciiHexDigitLower);

    /// <summary>Whether the credential's SHA-256 equals <paramref name="hexHash"/> (64 hex digits), compared in constant time.</summary>
    public static bool Matches(ReadOnlySpan<char> credential, string hexHash)
    {
        Span<byte> expected = stackalloc byte[SHA256.HashSizeInBytes];
        Span<byte> actual = stackalloc byte[SHA256.HashSizeInBytes];
        return Convert.FromHexString(hexHash, expected, out _, out var written) == OperationStatus.Done
            && written == expected.Length
            && TryHash(credential, actual)
            && CryptographicOperations.FixedTimeEquals(expected, actual);
    }
}
