using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;

namespace McpGuard.Protocol;

/// <summary>Request ids: keep a well-formed one the caller sent, otherwise make a new one.</summary>
internal static class RequestIds
{
    private const int MaxLength = 128;

    /// <summary>Random bytes one id takes: 74 of their 80 bits are used.</summary>
    internal const int RandomBytesPerId = 10;

    /// <summary>How many ids' random bytes one call to the system's generator fills.</summary>
    private const int IdsPerRefill = 128;

    // Per thread, so taking bytes needs no lock; NewId never awaits, so an id's bytes come from one buffer.
    [ThreadStatic]
    private static byte[]? t_random;

    [ThreadStatic]
    private static int t_next;

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
    /// instead of at random pages. The random bits come from the system's cryptographic generator, as
    /// <see cref="Guid.CreateVersion7()"/>'s do, but fetched for many ids at once: <c>Guid.NewGuid</c> makes one
    /// system call per id, which was the largest single cost of a guarded request.
    /// </summary>
    public static string NewId()
    {
        var random = t_random;
        var next = t_next;
        if (random is null || next > random.Length - RandomBytesPerId)
        {
            random = t_random ??= new byte[RandomBytesPerId * IdsPerRefill];
            RandomNumberGenerator.Fill(random);
            next = 0;
        }

        t_next = next + RandomBytesPerId;
        return Create(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), random.AsSpan(next, RandomBytesPerId));
    }

    /// <summary>The id for a time and ten random bytes: the UUIDv7 layout of RFC 9562, big-endian, as <see cref="Guid.CreateVersion7()"/> lays it out.</summary>
    internal static string Create(long unixMilliseconds, ReadOnlySpan<byte> random)
    {
        Span<byte> uuid = stackalloc byte[16];
        Span<byte> time = stackalloc byte[8];
        BinaryPrimitives.WriteInt64BigEndian(time, unixMilliseconds);
        time[2..].CopyTo(uuid);                               // unix_ts_ms: 48 bits
        uuid[6] = (byte)(0x70 | (random[0] & 0x0F));          // version 7, then 4 bits of rand_a
        uuid[7] = random[1];                                  // the other 8 bits of rand_a
        uuid[8] = (byte)(0x80 | (random[2] & 0x3F));          // variant 10, then 6 bits of rand_b
        random[3..RandomBytesPerId].CopyTo(uuid[9..]);        // the other 56 bits of rand_b

        Span<char> chars = stackalloc char[26];
        "req_".CopyTo(chars);
        Base64Url.EncodeToChars(uuid, chars[4..]);
        return new string(chars);
    }
}
