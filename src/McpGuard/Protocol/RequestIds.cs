using System.Buffers.Text;

namespace McpGuard.Protocol;

/// <summary>Request ids: keep a well-formed one the caller sent, otherwise make a new one.</summary>
internal static class RequestIds
{
    private const int MaxLength = 128;

    /// <summary>1 to 128 characters of letters, digits and <c>-._:</c>; anything else is replaced, never echoed.</summary>
    public static bool IsWellFormed(ReadOnlySpan<char> value)
    {
        if (value.IsEmpty || value.Length > MaxLength)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '.' or '_' or ':'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A new id: a UUIDv7 (48 bits of milliseconds, then 74 random bits), URL-safe base64 (22 characters), prefixed
    /// <c>req_</c>. Ids made close in time share a prefix, so the ledger's request-id index grows at its end
    /// instead of at random pages.
    /// </summary>
    public static string NewId() => string.Create(26, Guid.CreateVersion7(), static (chars, guid) =>
    {
        "req_".CopyTo(chars);
        Span<byte> bytes = stackalloc byte[16];
        guid.TryWriteBytes(bytes, bigEndian: true, out _);
        Base64Url.EncodeToChars(bytes, chars[4..]);
    });
}
