using System.Buffers;
using System.Security.Cryptography;
using System.Text;

namespace McpGuard.Auth;

/// <summary>
/// The SHA-256 of a credential as sent, the one way McpGuard turns a presented API key (or admin key) into what
/// configuration and the ledger store. Encoded on the stack (a pooled buffer for long ones) and wiped after.
/// </summary>
internal static class CredentialHash
{
    /// <summary>Longer credentials are refused without hashing them.</summary>
    public const int MaxLength = 8192;

    private const int StackLimit = 256;

    /// <summary>SHA-256 of the credential's UTF-8 bytes into <paramref name="hash"/>; false, and nothing hashed, when it is longer than <see cref="MaxLength"/>.</summary>
    public static bool TryCompute(ReadOnlySpan<char> credential, Span<byte> hash)
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

    /// <summary>Whether the credential's SHA-256 equals <paramref name="hexHash"/> (64 hex digits), compared in constant time.</summary>
    public static bool Matches(ReadOnlySpan<char> credential, string hexHash)
    {
        Span<byte> expected = stackalloc byte[SHA256.HashSizeInBytes];
        Span<byte> actual = stackalloc byte[SHA256.HashSizeInBytes];
        return Convert.FromHexString(hexHash, expected, out _, out var written) == OperationStatus.Done
            && written == expected.Length
            && TryCompute(credential, actual)
            && CryptographicOperations.FixedTimeEquals(expected, actual);
    }
}
