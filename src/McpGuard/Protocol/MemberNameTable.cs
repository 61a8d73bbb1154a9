using System.Text;

namespace McpGuard.Protocol;

/// <summary>
/// The member names of every object the envelope parser has open, to find two members of one object whose names
/// are equal ignoring case. Names are kept as positions in the body; one is decoded to a string only when it is
/// escaped or not ASCII, or when it has to be compared with one that is. An object with many members switches to
/// a hash table. One table per thread is reused, so a parse allocates nothing for the common small body.
/// </summary>
internal sealed class MemberNameTable
{
    /// <summary>How a new member name clashes with an earlier one of the same object.</summary>
    internal enum Clash
    {
        None,
        Exact,
        Case,
    }

    /// <summary>Members an object may have before its names go into a hash table instead of being compared pairwise.</summary>
    internal const int SmallObject = 16;

    private const int MaxPooledTables = 4;
    private const int MaxPooledTableSize = 1024;

    [ThreadStatic]
    private static MemberNameTable? t_cached;

    private readonly Stack<Dictionary<string, string>> _spareTables = new();
    private Entry[] _entries = new Entry[32];
    private Frame[] _frames = new Frame[16];
    private int _count;
    private int _used;
    private int _depth;

    private struct Entry
    {
        public int Start;
        public int Length;
        public bool Simple;
        public string? Decoded;
    }

    private struct Frame
    {
        public int Start;
        public Dictionary<string, string>? Large;
    }

    public static MemberNameTable Rent()
    {
        var table = t_cached ?? new MemberNameTable();
        t_cached = null;
        return table;
    }

    public static void Return(MemberNameTable table)
    {
        while (table._depth > 0)
        {
            table.Close();
        }

        // Only the entries this parse used can hold a decoded name.
        Array.Clear(table._entries, 0, table._used);
        table._used = 0;
        table._count = 0;
        t_cached = table;
    }

    /// <summary>An object starts.</summary>
    public void Open()
    {
        if (_depth == _frames.Length)
        {
            Array.Resize(ref _frames, _frames.Length * 2);
        }

        _frames[_depth++] = new Frame { Start = _count };
    }

    /// <summary>The innermost object ends; its names are forgotten.</summary>
    public void Close()
    {
        ref var frame = ref _frames[--_depth];
        _count = frame.Start;
        if (frame.Large is { } large)
        {
            if (_spareTables.Count < MaxPooledTables && large.Count <= MaxPooledTableSize)
            {
                large.Clear();
                _spareTables.Push(large);
            }

            frame.Large = null;
        }
    }

    /// <summary>
    /// Adds a member name of the innermost object. <paramref name="simple"/> says the name is unescaped ASCII, read
    /// from <paramref name="body"/> at <paramref name="start"/>; otherwise <paramref name="decoded"/> is its text.
    /// On a clash, the two names are returned for the message.
    /// </summary>
    public Clash Add(ReadOnlySpan<byte> body, int start, int length, bool simple, string? decoded, out string earlier, out string added)
    {
        earlier = added = string.Empty;
        ref var frame = ref _frames[_depth - 1];
        if (frame.Large is { } large)
        {
            var name = decoded ?? Encoding.UTF8.GetString(body.Slice(start, length));
            if (large.TryGetValue(name, out var existing))
            {
                return Report(existing, name, out earlier, out added);
            }

            large.Add(name, name);
            return Clash.None;
        }

        var raw = body.Slice(start, length);
        for (var i = frame.Start; i < _count; i++)
        {
            ref var entry = ref _entries[i];
            if (simple && entry.Simple)
            {
                if (entry.Length == length && Ascii.EqualsIgnoreCase(body.Slice(entry.Start, entry.Length), raw))
                {
                    return Report(Encoding.UTF8.GetString(body.Slice(entry.Start, entry.Length)), Encoding.UTF8.GetString(raw), out earlier, out added);
                }

                continue;
            }

            var other = entry.Decoded ??= Encoding.UTF8.GetString(body.Slice(entry.Start, entry.Length));
            decoded ??= Encoding.UTF8.GetString(raw);
            if (string.Equals(other, decoded, StringComparison.OrdinalIgnoreCase))
            {
                return Report(other, decoded, out earlier, out added);
            }
        }

        if (_count == _entries.Length)
        {
            Array.Resize(ref _entries, _entries.Length * 2);
        }

        _entries[_count++] = new Entry { Start = start, Length = length, Simple = simple, Decoded = decoded };
        _used = Math.Max(_used, _count);
        if (_count - frame.Start >= SmallObject)
        {
            frame.Large = ToTable(body, frame.Start);
            _count = frame.Start;
        }

        return Clash.None;
    }

    private Dictionary<string, string> ToTable(ReadOnlySpan<byte> body, int from)
    {
        var table = _spareTables.Count > 0 ? _spareTables.Pop() : new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        for (var i = from; i < _count; i++)
        {
            var name = _entries[i].Decoded ?? Encoding.UTF8.GetString(body.Slice(_entries[i].Start, _entries[i].Length));
            table.Add(name, name);
            _entries[i] = default;
        }

        return table;
    }

    private static Clash Report(string existing, string name, out string earlier, out string added)
    {
        earlier = existing;
        added = name;
        return string.Equals(existing, name, StringComparison.Ordinal) ? Clash.Exact : Clash.Case;
    }
}
