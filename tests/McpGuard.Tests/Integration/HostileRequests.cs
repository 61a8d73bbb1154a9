using System.Globalization;
using System.Text;
using CsCheck;
using McpGuard.Tests.Infrastructure;

namespace McpGuard.Tests.Integration;

/// <summary>
/// A JSON document as a tree that can hold what no serializer writes: strings with raw bytes that are not UTF-8 or
/// with escapes that leave unpaired surrogates, numbers no type holds, repeated members, any depth.
/// </summary>
internal abstract record J
{
    public abstract void Render(List<byte> output);

    public byte[] ToBytes()
    {
        var output = new List<byte>();
        Render(output);
        return [.. output];
    }
}

/// <summary>A number, <c>true</c>, <c>false</c>, <c>null</c>, or any other text, written verbatim.</summary>
internal sealed record JRaw(string Text) : J
{
    public override void Render(List<byte> output) => output.AddRange(Encoding.UTF8.GetBytes(Text));
}

/// <summary>A string: text (escaped as JSON needs; non-ASCII raw or as <c>\u</c> escapes) plus verbatim pieces.</summary>
internal sealed record JStr(JText Text) : J
{
    public override void Render(List<byte> output) => Text.Render(output);
}

internal sealed record JArr(List<J> Items) : J
{
    public override void Render(List<byte> output)
    {
        output.Add((byte)'[');
        for (var i = 0; i < Items.Count; i++)
        {
            if (i > 0)
            {
                output.Add((byte)',');
            }

            Items[i].Render(output);
        }

        output.Add((byte)']');
    }
}

internal sealed record JObj(List<(JText Name, J Value)> Members) : J
{
    public override void Render(List<byte> output)
    {
        output.Add((byte)'{');
        for (var i = 0; i < Members.Count; i++)
        {
            if (i > 0)
            {
                output.Add((byte)',');
            }

            Members[i].Name.Render(output);
            output.Add((byte)':');
            Members[i].Value.Render(output);
        }

        output.Add((byte)'}');
    }
}

/// <summary>The inside of a JSON string: plain text, verbatim escapes (<c>\ud800</c>) and verbatim bytes (not UTF-8).</summary>
internal sealed record JText(IReadOnlyList<object> Pieces, bool EscapeNonAscii = false)
{
    public static JText Of(string text) => new([text]);

    public override string ToString() => string.Concat(Pieces.Select(p => p switch
    {
        string s => s,
        Verbatim v => v.Text,
        byte[] b => $"<{Convert.ToHexString(b)}>",
        _ => "?",
    }));

    public void Render(List<byte> output)
    {
        output.Add((byte)'"');
        Span<char> utf16 = stackalloc char[2];
        Span<byte> utf8 = stackalloc byte[4];
        foreach (var piece in Pieces)
        {
            switch (piece)
            {
                case string text:
                    foreach (var rune in text.EnumerateRunes())
                    {
                        if (rune.Value is '"' or '\\' || rune.Value < 0x20 || (EscapeNonAscii && rune.Value > 0x7E))
                        {
                            var length = rune.EncodeToUtf16(utf16);
                            for (var i = 0; i < length; i++)
                            {
                                output.AddRange(Encoding.ASCII.GetBytes($"\\u{(int)utf16[i]:x4}"));
                            }
                        }
                        else
                        {
                            output.AddRange(utf8[..rune.EncodeToUtf8(utf8)].ToArray());
                        }
                    }

                    break;
                case Verbatim verbatim:
                    output.AddRange(Encoding.ASCII.GetBytes(verbatim.Text));
                    break;
                case byte[] bytes:
                    output.AddRange(bytes);
                    break;
            }
        }

        output.Add((byte)'"');
    }

    /// <summary>An escape written as is, such as <c>\ud800</c>.</summary>
    public sealed record Verbatim(string Text);
}

/// <summary>How the body is framed on the wire, and how the client ends its side.</summary>
internal enum Framing
{
    ContentLength,
    Chunked,
    NoLength,
    LongerBodyThanContentLength,
    ShortBodyThenHalfClose,
    ShortBodyThenReset,
    BadChunkSize,
    ChunkDataLongerThanSize,
    ChunkSizeOverflow,
    UnfinishedChunksThenHalfClose,
    TwoContentLengths,
    ContentLengthNotANumber,
    ContentLengthAndChunked,
    TransferEncodingNotChunked,
}

/// <summary>One generated request to the sample, and what it may do.</summary>
internal sealed record HostileCase(
    string Label,
    string Method,
    string Target,
    IReadOnlyList<KeyValuePair<string, string>> Headers,
    byte[] Body,
    Framing Framing,
    int Split,
    bool MustBeRefused)
{
    /// <summary>Whether the client closes or resets its side after sending, so no answer may come back.</summary>
    public RawEnding Ending => Framing switch
    {
        Framing.ShortBodyThenHalfClose or Framing.UnfinishedChunksThenHalfClose => RawEnding.HalfClose,
        Framing.ShortBodyThenReset => RawEnding.Reset,
        _ => RawEnding.StayOpen,
    };

    /// <summary>
    /// Whether the case may end with no answer on the socket: the client left, or it sent bytes past the request that
    /// the server refuses to read, which can make the kernel reset the connection under the answer.
    /// </summary>
    public bool MayGoUnanswered => Ending != RawEnding.StayOpen || Framing is Framing.NoLength or Framing.LongerBodyThanContentLength;

    public byte[] ToBytes()
    {
        var headers = new List<KeyValuePair<string, string>>(Headers);
        var body = Body;
        var split = Math.Clamp(Split, 1, Math.Max(1, body.Length));
        var cut = Math.Clamp(Split, 0, Math.Max(0, body.Length - 1));
        string Length(long value) => value.ToString(CultureInfo.InvariantCulture);
        byte[] wire;
        switch (Framing)
        {
            case Framing.ContentLength:
                headers.Add(new("Content-Length", Length(body.Length)));
                wire = body;
                break;
            case Framing.Chunked:
                headers.Add(new("Transfer-Encoding", "chunked"));
                wire = Chunks(body, split, "0\r\n\r\n");
                break;
            case Framing.NoLength:
                wire = body;
                break;
            case Framing.LongerBodyThanContentLength:
                headers.Add(new("Content-Length", Length(cut)));
                wire = body;
                break;
            case Framing.ShortBodyThenHalfClose:
            case Framing.ShortBodyThenReset:
                headers.Add(new("Content-Length", Length(body.Length + 1 + (Split % 100))));
                wire = body;
                break;
            case Framing.BadChunkSize:
                headers.Add(new("Transfer-Encoding", "chunked"));
                wire = [.. Chunks(body[..cut], split, ""), .. "zz\r\n"u8, .. body[cut..]];
                break;
            case Framing.ChunkDataLongerThanSize:
                headers.Add(new("Transfer-Encoding", "chunked"));
                wire = [.. Encoding.ASCII.GetBytes($"{Math.Max(0, body.Length - 1 - (Split % 4)):x}\r\n"), .. body, .. "X\r\n0\r\n\r\n"u8];
                break;
            case Framing.ChunkSizeOverflow:
                headers.Add(new("Transfer-Encoding", "chunked"));
                wire = [.. "1fffffffffffffffff\r\n"u8, .. body];
                break;
            case Framing.UnfinishedChunksThenHalfClose:
                headers.Add(new("Transfer-Encoding", "chunked"));
                wire = [.. Encoding.ASCII.GetBytes($"{body.Length + 10:x}\r\n"), .. body];
                break;
            case Framing.TwoContentLengths:
                headers.Add(new("Content-Length", Length(body.Length)));
                headers.Add(new("Content-Length", Length(Split % 2 == 0 ? body.Length : cut)));
                wire = body;
                break;
            case Framing.ContentLengthNotANumber:
                headers.Add(new("Content-Length", (Split % 6) switch { 0 => "abc", 1 => "-1", 2 => "99999999999999999999999", 3 => "1e3", 4 => "0x10", _ => "" }));
                wire = body;
                break;
            case Framing.ContentLengthAndChunked:
                headers.Add(new("Content-Length", Length(cut)));
                headers.Add(new("Transfer-Encoding", "chunked"));
                wire = Chunks(body, split, "0\r\n\r\n");
                break;
            default:
                headers.Add(new("Transfer-Encoding", (Split % 4) switch { 0 => "gzip", 1 => "chunked, gzip", 2 => "identity", _ => "gzip, chunked" }));
                wire = Split % 4 == 3 ? Chunks(body, split, "0\r\n\r\n") : body;
                break;
        }

        return RawHttp.Request(Method, Target, headers, wire);
    }

    private static byte[] Chunks(byte[] data, int size, string end)
    {
        var chunks = new List<byte>();
        for (var at = 0; at < data.Length; at += size)
        {
            var chunk = data.AsSpan(at, Math.Min(size, data.Length - at));
            chunks.AddRange(Encoding.ASCII.GetBytes($"{chunk.Length:x}\r\n"));
            chunks.AddRange(chunk.ToArray());
            chunks.AddRange("\r\n"u8.ToArray());
        }

        chunks.AddRange(Encoding.ASCII.GetBytes(end));
        return [.. chunks];
    }

    public override string ToString()
    {
        var body = Encoding.UTF8.GetString(Body);
        return $"{Label}: {Method} {Target} [{Framing}, split {Split}]\n"
            + string.Join("\n", Headers.Select(h => $"  {h.Key}: {h.Value}")) + "\n"
            + $"  body ({Body.Length} bytes): {(body.Length > 600 ? body[..600] + "…" : body)}\n"
            + $"  hex: {Convert.ToHexString(Body.AsSpan(0, Math.Min(Body.Length, 200)))}";
    }
}

/// <summary>
/// Generators of hostile requests to the sample: its guarded <c>/mcp</c> endpoint, and every admin endpoint. Every
/// request is built so that an honest server changes no money: <c>/mcp</c> bodies name only free calls unless the
/// credential cannot pay, and every admin request that could change something carries at least one defect that
/// must get it refused.
/// </summary>
internal static class HostileRequests
{
    public const string AdminKey = McpGuard.Tests.Admin.AdminTestKit.AdminKey;

    /// <summary>Names the sample prices or manages; generated names stay clear of them in every letter case.</summary>
    private static readonly string[] KnownNames = ["add", "slow", "fail", "premium_report", "echo", "alice", "bob", "carol"];

    private static readonly string[] PricedTools = ["add", "slow", "fail", "premium_report"];

    // ---- small helpers over CsCheck ----

    private static Gen<T> Any<T>(params IGen<T>[] gens) => Gen.OneOf(gens);

    private static Gen<T> Weighted<T>(params (int Weight, IGen<T> Gen)[] gens) => Gen.Frequency(gens);

    private static Gen<T> OneOf<T>(params T[] values) => Gen.Int[0, values.Length - 1].Select(i => values[i]);

    private static readonly Gen<string> Printable = Gen.String[Gen.Char[' ', '~'], 0, 24].Where(IsNotAKnownName);

    private static readonly Gen<string> SafeName = Gen.String[Gen.Char["abcdefghijklmnopqrstuvwxyz_0123456789-."], 1, 12].Where(IsNotAKnownName);

    private static bool IsNotAKnownName(string text) => !KnownNames.Contains(text.Trim(), StringComparer.OrdinalIgnoreCase);

    /// <summary>Text with anything Unicode allows: controls, separators, combining marks, wide letters, emoji.</summary>
    private static readonly Gen<string> AnyText = Any(
        Printable,
        Gen.String[Gen.Char['\u0000', '\u00ff'], 0, 16].Where(IsNotAKnownName),
        OneOf("\u0000", "\u2028\u2029", "e\u0301cho", "\uff45\uff43\uff48\uff4f", "\ud83d\ude00", "\ufeff", "\u00a0", "ECHO", "Echo", "name", "NAME"),
        Gen.Int[1000, 20_000].Select(n => new string('x', n)));

    /// <summary>
    /// Pieces that make a string not text, whatever comes after them: unpaired surrogate escapes, escapes JSON does not
    /// have (never a prefix of a valid one), raw control characters, and bytes that are not UTF-8.
    /// </summary>
    private static readonly Gen<object> BadPiece = Any<object>(
        OneOf<object>(
            new JText.Verbatim("\\ud800"), new JText.Verbatim("\\udfff"), new JText.Verbatim("\\udc00\\ud800"), new JText.Verbatim("\\ud83d"),
            new JText.Verbatim("\\uDBFF"), new JText.Verbatim("\\u00!"), new JText.Verbatim("\\x41"), new JText.Verbatim("\\q"),
            new byte[] { 0xC3, 0x28 }, new byte[] { 0xFF }, new byte[] { 0xC0, 0xAF }, new byte[] { 0xED, 0xA0, 0x80 },
            new byte[] { 0xF4, 0x90, 0x80, 0x80 }, new byte[] { 0xE2, 0x82 }, new byte[] { 0x80 }, new byte[] { 0x01 }, new byte[] { 0x0A }));

    public static readonly Gen<JText> HostileText =
        from prefix in Printable
        from bad in BadPiece
        from suffix in Printable
        select new JText([prefix, bad, suffix]);

    private static readonly Gen<JText> GoodText =
        from text in AnyText
        from escape in Gen.Bool
        select new JText([text], escape);

    private static readonly Gen<string> HugeNumber = OneOf(
        "1e400", "-1e400", "1" + new string('0', 400), "9223372036854775808", "-9223372036854775809", "18446744073709551616",
        "0." + new string('0', 400) + "1", "-0", "1E+2", "4.9e-324", "1.7976931348623157e309", "123456789012345678901234567890");

    private static readonly Gen<string> NotANumber = OneOf("1.", ".5", "01", "+1", "NaN", "Infinity", "-", "1e", "0x10", "1_000", "٣");

    private static Gen<J> Deep => Gen.Int[15, 300].Select(depth =>
    {
        J value = new JRaw("1");
        for (var i = 0; i < depth; i++)
        {
            value = i % 2 == 0 ? new JArr([value]) : new JObj([(JText.Of("d"), value)]);
        }

        return value;
    });

    /// <summary>Any JSON value, small: the values a type swap puts where another type belongs.</summary>
    private static readonly Gen<J> SmallValue = Any<J>(
        OneOf<J>(new JRaw("true"), new JRaw("false"), new JRaw("null"), new JRaw("0"), new JRaw("1.5"), new JRaw("-7"), new JObj([]), new JArr([])),
        GoodText.Select(t => (J)new JStr(t)),
        Gen.Long.Select(n => (J)new JRaw(n.ToString(CultureInfo.InvariantCulture))));

    /// <summary>A value no honest client sends.</summary>
    public static readonly Gen<J> HostileValue = Any(
        HostileText.Select(t => (J)new JStr(t)),
        HugeNumber.Select(n => (J)new JRaw(n)),
        NotANumber.Select(n => (J)new JRaw(n)),
        Deep,
        SmallValue,
        SmallValue.List[0, 4].Select(items => (J)new JArr(items)));

    // ---- mutations of a JSON tree ----

    private enum Change
    {
        ReplaceValue,
        RepeatMember,
        RenameMember,
        RemoveMember,
        AddMember,
        WrapInArray,
    }

    private sealed record Mutation(Change Change, int Pick, J Value, JText Name);

    private static readonly Gen<Mutation> AnyMutation =
        from change in Gen.Enum<Change>()
        from pick in Gen.Int[0, 1000]
        from value in HostileValue
        from name in Any(HostileText, GoodText, OneOf("name", "Name", "NAME", "n\\u0061me", "method", "Method", "params", "jsonrpc", "id", "arguments", "_meta")
            .Select(n => n.Contains('\\', StringComparison.Ordinal) ? new JText([new JText.Verbatim(n)]) : JText.Of(n)))
        select new Mutation(change, pick, value, name);

    /// <summary>Applies <paramref name="mutation"/> to a copy of <paramref name="root"/>.</summary>
    private static J Apply(J root, Mutation mutation)
    {
        if (mutation.Change == Change.WrapInArray)
        {
            return new JArr([root]);
        }

        var copy = Copy(root);
        var objects = new List<JObj>();
        var arrays = new List<JArr>();
        Collect(copy, objects, arrays);
        if (objects.Count == 0 && arrays.Count == 0)
        {
            return mutation.Value;
        }

        if (objects.Count == 0)
        {
            var array = arrays[mutation.Pick % arrays.Count];
            if (array.Items.Count > 0)
            {
                array.Items[mutation.Pick % array.Items.Count] = mutation.Value;
            }
            else
            {
                array.Items.Add(mutation.Value);
            }

            return copy;
        }

        var target = objects[mutation.Pick % objects.Count];
        var members = target.Members;
        var at = members.Count == 0 ? 0 : mutation.Pick % members.Count;
        switch (mutation.Change)
        {
            case Change.ReplaceValue when members.Count > 0:
                members[at] = (members[at].Name, mutation.Value);
                break;
            case Change.RepeatMember when members.Count > 0:
                members.Insert(Math.Min(members.Count, at + 1 + (mutation.Pick % 2)), (members[at].Name, mutation.Value));
                break;
            case Change.RenameMember when members.Count > 0:
                members[at] = (mutation.Name, members[at].Value);
                break;
            case Change.RemoveMember when members.Count > 0:
                members.RemoveAt(at);
                break;
            default:
                members.Insert(at, (mutation.Name, mutation.Value));
                break;
        }

        return copy;
    }

    private static J Copy(J node) => node switch
    {
        JObj obj => new JObj([.. obj.Members.Select(m => (m.Name, Copy(m.Value)))]),
        JArr arr => new JArr([.. arr.Items.Select(Copy)]),
        _ => node,
    };

    private static void Collect(J node, List<JObj> objects, List<JArr> arrays)
    {
        switch (node)
        {
            case JObj obj:
                objects.Add(obj);
                foreach (var (_, value) in obj.Members)
                {
                    Collect(value, objects, arrays);
                }

                break;
            case JArr arr:
                arrays.Add(arr);
                foreach (var item in arr.Items)
                {
                    Collect(item, objects, arrays);
                }

                break;
        }
    }

    /// <summary>Byte-level damage after rendering: cut, flip, insert, delete, repeat, or replace it all.</summary>
    private static readonly Gen<Func<byte[], byte[]>> Damage = Any(
        Gen.Const<Func<byte[], byte[]>>(bytes => bytes),
        Gen.Int[0, 100_000].Select<int, Func<byte[], byte[]>>(at => bytes => bytes[..(bytes.Length == 0 ? 0 : at % bytes.Length)]),
        (from at in Gen.Int[0, 100_000] from value in Gen.Byte select (Func<byte[], byte[]>)(bytes =>
        {
            if (bytes.Length == 0)
            {
                return [value];
            }

            var copy = (byte[])bytes.Clone();
            copy[at % copy.Length] = value;
            return copy;
        })),
        (from at in Gen.Int[0, 100_000] from insert in Gen.Byte.Array[1, 8] select (Func<byte[], byte[]>)(bytes =>
        {
            var i = bytes.Length == 0 ? 0 : at % bytes.Length;
            return [.. bytes[..i], .. insert, .. bytes[i..]];
        })),
        (from at in Gen.Int[0, 100_000] from length in Gen.Int[1, 16] from repeat in Gen.Bool select (Func<byte[], byte[]>)(bytes =>
        {
            if (bytes.Length == 0)
            {
                return bytes;
            }

            var i = at % bytes.Length;
            var end = Math.Min(bytes.Length, i + length);
            return repeat ? [.. bytes[..end], .. bytes[i..end], .. bytes[end..]] : [.. bytes[..i], .. bytes[end..]];
        })),
        Gen.Byte.Array[0, 64].Select<byte[], Func<byte[], byte[]>>(random => _ => random),
        OneOf<Func<byte[], byte[]>>(
            bytes => [0xEF, 0xBB, 0xBF, .. bytes],
            bytes => [.. bytes, .. " trailing"u8],
            bytes => [.. bytes, .. bytes],
            bytes => [.. "\r\n\t "u8, .. bytes, .. " \n"u8]));

    // ---- the guarded /mcp endpoint ----

    private static J Envelope(J? id, string method, J? parameters)
    {
        var members = new List<(JText, J)> { (JText.Of("jsonrpc"), new JStr(JText.Of("2.0"))) };
        if (id is not null)
        {
            members.Add((JText.Of("id"), id));
        }

        members.Add((JText.Of("method"), new JStr(JText.Of(method))));
        if (parameters is not null)
        {
            members.Add((JText.Of("params"), parameters));
        }

        return new JObj(members);
    }

    private static JObj Obj(params (string Name, J Value)[] members) => new([.. members.Select(m => (JText.Of(m.Name), m.Value))]);

    private static JStr Str(string text) => new(JText.Of(text));

    private static readonly Gen<J> RequestId = Any<J>(
        Gen.Int[0, 1_000_000].Select(n => (J)new JRaw(n.ToString(CultureInfo.InvariantCulture))),
        Printable.Select(s => (J)Str(s)));

    private static readonly Gen<J> Arguments = Any<J>(
        GoodText.Select(t => (J)Obj(("message", new JStr(t)))),
        SmallValue.Select(v => (J)Obj(("a", v), ("b", new JRaw("2")))),
        Gen.Const<J>(new JObj([])));

    /// <summary>Calls the sample never charges for: ping, lists, echo, unknown tools, reads, prompts, notifications, responses.</summary>
    private static readonly Gen<J> FreeMessage = Any(
        RequestId.Select(id => Envelope(id, "ping", null)),
        RequestId.Select(id => Envelope(id, "tools/list", Obj(("cursor", Str("x"))))),
        (from id in RequestId from args in Arguments select Envelope(id, "tools/call", Obj(("name", Str("echo")), ("arguments", args)))),
        (from id in RequestId from name in SafeName from args in Arguments select Envelope(id, "tools/call", Obj(("name", Str(name)), ("arguments", args)))),
        (from id in RequestId from uri in Printable select Envelope(id, "resources/read", Obj(("uri", Str(uri))))),
        (from id in RequestId from name in SafeName select Envelope(id, "prompts/get", Obj(("name", Str(name))))),
        RequestId.Select(id => Envelope(id, "initialize", Obj(
            ("protocolVersion", Str("2025-11-25")), ("capabilities", new JObj([])), ("clientInfo", Obj(("name", Str("hostile")), ("version", Str("1"))))))),
        Gen.Const(Envelope(null, "notifications/initialized", null)),
        Gen.Const<J>(Obj(("jsonrpc", Str("2.0")), ("id", new JRaw("1")), ("result", new JObj([])))),
        RequestId.Select(id => Envelope(id, "tools/call", Obj(
            ("name", Str("echo")), ("arguments", Obj(("message", Str("meta")))), ("_meta", Obj(("protocolVersion", Str("2026-07-28"))))))));

    /// <summary>Priced calls: only ever sent with a credential that cannot pay.</summary>
    private static readonly Gen<J> PricedMessage =
        from id in RequestId
        from tool in OneOf(PricedTools)
        from args in Arguments
        select Envelope(id, "tools/call", Obj(("name", Str(tool)), ("arguments", args)));

    /// <summary>A credential, and whether it belongs to an account that could pay (alice, or bob with his free calls).</summary>
    private static readonly Gen<(List<KeyValuePair<string, string>> Headers, bool CanPay)> McpCredentials = Weighted(
        (3, OneOf(
            (new List<KeyValuePair<string, string>> { new("Authorization", $"Bearer {DemoKeys.Alice}") }, true),
            ([new("Authorization", $"Bearer {DemoKeys.Bob}")], true),
            ([new("X-Api-Key", DemoKeys.Alice)], true),
            ([new("Authorization", $"Bearer {DemoKeys.Alice}"), new("Authorization", "Bearer x")], true))),
        (2, OneOf(
            (new List<KeyValuePair<string, string>>(), false),
            ([new("Authorization", $"Bearer {DemoKeys.Carol}")], false),
            ([new("Authorization", $"Bearer {DemoKeys.Revoked}")], false),
            ([new("Authorization", $"Bearer {DemoKeys.Expired}")], false),
            ([new("Authorization", "Bearer ")], false),
            ([new("Authorization", "Basic YWxpY2U6YWxpY2U=")], false),
            ([new("Authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln")], false))),
        (1, Printable.Select(s => (new List<KeyValuePair<string, string>> { new("Authorization", $"Bearer mcpg_{s}") }, false))));

    private static readonly Gen<string?> McpContentType = Weighted<string?>(
        (12, Gen.Const<string?>("application/json")),
        (3, OneOf<string?>("application/json; charset=utf-8", "Application/JSON; charset=\"UTF-8\"", "application/json; charset=latin1", "application/json;;;",
            "text/plain", "", null, "application/json, text/plain", "application/x-www-form-urlencoded", "*/*")),
        (1, Printable.Select(s => (string?)s)));

    private static readonly Gen<string?> Accept = Weighted<string?>(
        (12, Gen.Const<string?>("application/json, text/event-stream")),
        (3, OneOf<string?>("*/*", "application/json", "text/event-stream", null, "", "application/*, text/*", "text/html;q=0.1, application/json;q=x, text/event-stream")),
        (1, Printable.Select(s => (string?)s)));

    /// <summary>Headers that ride along: request ids, the MCP headers, Origin, Expect and junk, some with bytes Kestrel refuses.</summary>
    private static readonly Gen<List<KeyValuePair<string, string>>> ExtraHeaders = Weighted(
        (6, Gen.Const(new List<KeyValuePair<string, string>>())),
        (4, (from name in OneOf("X-Request-Id", "Mcp-Method", "Mcp-Name", "MCP-Protocol-Version", "Origin", "Expect", "X-Junk", "Mcp-Session-Id", "Content-Encoding")
             from value in Any(Printable, OneOf("tools/call", "echo", "ping", "2025-11-25", "2026-07-28", "2099-01-01", "http://127.0.0.1:5080", "https://evil.example",
                 "null", "100-continue", "gzip", "=?base64?ZWNobw==?=", new string('r', 300)))
             select new KeyValuePair<string, string>(name, value)).List[1, 4]),
        (1, (from name in OneOf("X-Junk", "X-Request-Id", "Mcp-Name")
             from value in Gen.String[Gen.Char['\u0001', '\u00ff'], 1, 12].Where(v => !v.Contains('\r', StringComparison.Ordinal) && !v.Contains('\n', StringComparison.Ordinal))
             select new List<KeyValuePair<string, string>> { new(name, value) })));

    private static readonly Gen<Framing> AnyFraming = Weighted(
        (14, Gen.Const(Framing.ContentLength)),
        (4, Gen.Const(Framing.Chunked)),
        (6, Gen.Enum<Framing>()));

    private static readonly Gen<(string Method, string Target)> McpTarget = Weighted(
        (20, Gen.Const(("POST", "/mcp"))),
        (1, OneOf(("POST", "/mcp/"), ("POST", "/MCP"), ("POST", "/mcp?x=%ff"), ("POST", "/mcp/../mcp"), ("GET", "/mcp"), ("DELETE", "/mcp"),
            ("PUT", "/mcp"), ("OPTIONS", "/mcp"), ("PATCH", "/mcp"), ("P@ST", "/mcp"), ("POST", "*"), ("POST", "/mcp%00"))));

    /// <summary>Requests to <c>/mcp</c>: mutated messages, damaged bytes, odd headers and framing.</summary>
    public static readonly Gen<HostileCase> Mcp =
        from credentials in McpCredentials
        from message in credentials.CanPay ? FreeMessage : Any(FreeMessage, PricedMessage)
        from mutations in Weighted((1, Gen.Const(new List<Mutation>())), (3, AnyMutation.List[1, 3]))
        from damage in Weighted((4, Gen.Const<Func<byte[], byte[]>>(b => b)), (1, Damage))
        from contentType in McpContentType
        from accept in Accept
        from extra in ExtraHeaders
        from target in McpTarget
        from framing in AnyFraming
        from split in Gen.Int[0, 5000]
        select Build("mcp", target.Method, target.Target, credentials.Headers, contentType, accept, extra,
            damage(mutations.Aggregate(message, Apply).ToBytes()), framing, split, mustBeRefused: false);

    // ---- the admin API ----

    /// <summary>An id in a route: never one the sample knows, in any letter case; often not even text.</summary>
    private static readonly Gen<string> UnknownRouteValue = Any(
        SafeName.Select(Uri.EscapeDataString),
        Gen.String[Gen.Char['\u0001', '\uffff'], 1, 10].Where(IsNotAKnownName).Select(Uri.EscapeDataString),
        OneOf("%FF", "%C3%28", "%ED%A0%80", "%00", "%2F", "%2e%2e", "a%20b", new string('z', 300), "%F0%9F%98%80"));

    private sealed record AdminEndpoint(string Method, string Path, bool TakesBody, bool ReadOnly, Func<J>? ValidBody);

    /// <summary>The four bodies the admin API reads, valid as generated (the one defect each case carries is added after).</summary>
    private static readonly Gen<J> TopUpBody =
        from amount in Gen.Long[1, 1_000_000]
        from note in GoodText
        select (J)new JObj([(JText.Of("amount_micro"), new JRaw(amount.ToString(CultureInfo.InvariantCulture))), (JText.Of("note"), new JStr(note))]);

    private static readonly Gen<J> CapBody = Gen.Long[0, 1_000_000].Select(cap => (J)Obj(("monthly_cap_micro", new JRaw(cap.ToString(CultureInfo.InvariantCulture)))));

    private static readonly Gen<J> KeyBody =
        from account in SafeName
        from id in SafeName
        select (J)Obj(("account", Str(account)), ("scopes", new JArr([Str("tools:basic")])), ("expires_at", Str("2099-01-01T00:00:00Z")), ("id", Str("k" + id)));

    /// <summary>One change that makes an admin body refused whatever else is in it, for a body-taking endpoint.</summary>
    private enum BodyDefect
    {
        CutShort,
        WrongType,
        BadText,
        BadMemberName,
        RepeatedMember,
        TooDeep,
        NotAnObject,
        NotJsonAtAll,
    }

    private static Gen<byte[]> DefectiveBody(Gen<J> valid, string field, Gen<J> wrongValue) =>
        from body in valid
        from noise in (from name in SafeName from value in GoodText select (Name: name, Value: value)).List[0, 2]
        from defect in Gen.Enum<BodyDefect>()
        from pick in Gen.Int[0, 1000]
        from wrong in wrongValue
        from badText in HostileText
        from deep in Gen.Int[17, 200]
        from junk in Gen.Byte.Array[0, 40]
        select Defective(body, noise, defect, pick, field, wrong, badText, deep, junk);

    private static byte[] Defective(J body, List<(string Name, JText Value)> noise, BodyDefect defect, int pick, string field, J wrong, JText badText, int deep, byte[] junk)
    {
        var root = (JObj)Copy(body);
        foreach (var (name, value) in noise)
        {
            root.Members.Add((JText.Of("x_" + name), new JStr(value)));
        }

        var at = pick % root.Members.Count;
        switch (defect)
        {
            case BodyDefect.CutShort:
                var bytes = root.ToBytes();
                return bytes[..(pick % bytes.Length)];
            case BodyDefect.WrongType:
                var index = root.Members.FindIndex(m => m.Name.ToString() == field);
                root.Members[index] = (root.Members[index].Name, wrong);
                break;
            case BodyDefect.BadText:
                root.Members[at] = (root.Members[at].Name, pick % 3 == 0 ? new JArr([new JStr(badText)]) : new JStr(badText));
                break;
            case BodyDefect.BadMemberName:
                root.Members.Insert(at, (badText, new JRaw("1")));
                break;
            case BodyDefect.RepeatedMember:
                root.Members.Add((root.Members[at].Name, root.Members[(pick / 7) % root.Members.Count].Value));
                break;
            case BodyDefect.TooDeep:
                J value = new JRaw("0");
                for (var i = 0; i < deep; i++)
                {
                    value = new JArr([value]);
                }

                root.Members.Insert(at, (JText.Of("deep"), value));
                break;
            case BodyDefect.NotAnObject:
                return (pick % 4) switch
                {
                    0 => new JArr([root]).ToBytes(),
                    1 => "null"u8.ToArray(),
                    2 => new JStr(JText.Of(Encoding.UTF8.GetString(root.ToBytes()))).ToBytes(),
                    _ => "12345"u8.ToArray(),
                };
            default:
                // Anything but an object: bytes that cannot start one.
                return [(byte)"[\"x1-tn!#<"[pick % 10], .. junk];
        }

        return root.ToBytes();
    }

    private static readonly Gen<J> NotAPositiveAmount = Any(
        OneOf<J>(new JRaw("0"), new JRaw("-1"), new JRaw("1.5"), new JRaw("null"), new JRaw("true"), Str("100"), new JObj([]), new JArr([new JRaw("5")])),
        HugeNumber.Where(n => n != "1E+2").Select(n => (J)new JRaw(n)),
        HostileText.Select(t => (J)new JStr(t)));

    private static readonly Gen<J> NotACap = Any(
        OneOf<J>(new JRaw("-1"), new JRaw("0.5"), new JRaw("false"), Str("5000"), new JArr([]), new JObj([])),
        HugeNumber.Where(n => n != "-0").Select(n => (J)new JRaw(n.StartsWith('-') ? n : "-" + n)),
        HostileText.Select(t => (J)new JStr(t)));

    private static readonly Gen<J> NotAnAccount = Any(
        OneOf<J>(new JRaw("null"), new JRaw("42"), Str(""), Str("   "), Str("a\u0001b"), Str(new string('a', 201)), new JArr([Str("bob")]), new JObj([])),
        HostileText.Select(t => (J)new JStr(t)));

    /// <summary>A defect in the request around the body: no or a wrong admin key, a refused Origin, a bad media type, broken framing.</summary>
    private enum RequestDefect
    {
        None,
        NoAdminKey,
        WrongAdminKey,
        ApiKeyInsteadOfAdminKey,
        TwoAuthorizationHeaders,
        OriginNotAllowed,
        NotJsonMediaType,
        BrokenFraming,
    }

    /// <summary>
    /// Requests to every admin endpoint. Body-taking endpoints get a defective body or a defect around it; endpoints
    /// without a body get an unknown route value or a defect around the request; the reads (GET) may be anything.
    /// </summary>
    public static readonly Gen<HostileCase> Admin =
        from endpoint in OneOf(
            ("POST", "/admin/accounts/{id}/topup", "topup"),
            ("POST", "/admin/accounts/{id}/adjust", "adjust"),
            ("PUT", "/admin/accounts/{id}/cap", "cap"),
            ("POST", "/admin/keys", "keys"),
            ("GET", "/admin/accounts/{id}", "read"),
            ("GET", "/admin/accounts/{id}/ledger", "ledger"),
            ("POST", "/admin/accounts/{id}/suspend", "suspend"),
            ("POST", "/admin/accounts/{id}/reactivate", "reactivate"),
            ("POST", "/admin/keys/{id}/revoke", "revoke"),
            ("POST", "/admin/tools/{id}/pause", "pause"),
            ("POST", "/admin/tools/{id}/archive", "archive"),
            ("POST", "/admin/tools/{id}/restore", "restore"))
        from known in OneOf("bob", "alice", "carol", "add", "echo", "demo-alice")
        from unknown in UnknownRouteValue
        from query in Any(Gen.Const(""), OneOf("?limit=0", "?limit=501", "?limit=-1", "?limit=5&limit=6", "?before=x", "?before=0", "?limit=%FF", "?limit=99999999999999999999"))
        from topUp in DefectiveBody(TopUpBody, "amount_micro", NotAPositiveAmount)
        from adjust in DefectiveBody(TopUpBody, "amount_micro", NotAPositiveAmount.Where(v => v is not JRaw { Text: "-1" }))
        from cap in DefectiveBody(CapBody, "monthly_cap_micro", NotACap)
        from key in DefectiveBody(KeyBody, "account", NotAnAccount)
        from requestDefect in Weighted((3, Gen.Const(RequestDefect.None)), (2, Gen.Enum<RequestDefect>()))
        from bodyless in Gen.Byte.Array[0, 40]
        from useKnown in Gen.Bool
        from contentType in Weighted(
            (8, Gen.Const<string?>("application/json")),
            (1, OneOf<string?>("application/json; charset=utf-16", "application/problem+json", "text/json", "application/vnd.api+json")))
        from extra in ExtraHeaders
        from framing in Weighted((10, Gen.Const(Framing.ContentLength)), (3, Gen.Const(Framing.Chunked)), (1, Gen.Const(Framing.NoLength)))
        from brokenFraming in OneOf(Framing.BadChunkSize, Framing.ChunkDataLongerThanSize, Framing.ChunkSizeOverflow, Framing.ShortBodyThenHalfClose,
            Framing.ShortBodyThenReset, Framing.UnfinishedChunksThenHalfClose, Framing.TwoContentLengths, Framing.ContentLengthNotANumber)
        from split in Gen.Int[0, 5000]
        select AdminCase(endpoint, known, unknown, query, topUp, adjust, cap, key, requestDefect, bodyless, useKnown, contentType, extra, framing, brokenFraming, split);

    private static HostileCase AdminCase(
        (string Method, string Path, string Name) endpoint, string known, string unknown, string query, byte[] topUp, byte[] adjust, byte[] cap, byte[] key,
        RequestDefect requestDefect, byte[] bodyless, bool useKnown, string? contentType, List<KeyValuePair<string, string>> extra, Framing framing,
        Framing brokenFraming, int split)
    {
        var readOnly = endpoint.Method == "GET";
        var takesBody = endpoint.Name is "topup" or "adjust" or "cap" or "keys";

        // A request to an endpoint that reads no body changes nothing only if it names something unknown, or something
        // around it is refused: its body, its media type and its framing are never looked at.
        if (!takesBody && !readOnly && requestDefect is RequestDefect.None or RequestDefect.NotJsonMediaType or RequestDefect.BrokenFraming)
        {
            useKnown = false;
        }

        var path = endpoint.Path.Replace("{id}", useKnown ? known : unknown, StringComparison.Ordinal) + (endpoint.Name == "ledger" ? query : "");
        var body = endpoint.Name switch
        {
            "topup" => topUp,
            "adjust" => adjust,
            "cap" => cap,
            "keys" => key,
            _ => bodyless,
        };

        var headers = new List<KeyValuePair<string, string>> { new("Host", "127.0.0.1") };
        switch (requestDefect)
        {
            case RequestDefect.NoAdminKey:
                break;
            case RequestDefect.WrongAdminKey:
                headers.Add(new("Authorization", "Bearer mcpg_admin_wrong"));
                break;
            case RequestDefect.ApiKeyInsteadOfAdminKey:
                headers.Add(new("Authorization", $"Bearer {DemoKeys.Alice}"));
                break;
            case RequestDefect.TwoAuthorizationHeaders:
                headers.Add(new("Authorization", $"Bearer {AdminKey}"));
                headers.Add(new("Authorization", $"Bearer {AdminKey}"));
                break;
            case RequestDefect.OriginNotAllowed:
                headers.Add(new("Authorization", $"Bearer {AdminKey}"));
                headers.Add(new("Origin", "https://evil.example"));
                break;
            default:
                headers.Add(new("Authorization", $"Bearer {AdminKey}"));
                break;
        }

        var type = requestDefect == RequestDefect.NotJsonMediaType ? (split % 3 == 0 ? null : split % 3 == 1 ? "text/plain" : "application/x-www-form-urlencoded") : contentType;
        if (type is not null)
        {
            headers.Add(new("Content-Type", type));
        }

        headers.AddRange(extra.Where(h => h.Key is not ("Origin" or "Expect")));
        headers.Add(new("Connection", "close"));
        return new HostileCase(
            $"admin {endpoint.Name} ({requestDefect})",
            endpoint.Method,
            path,
            headers,
            body,
            requestDefect == RequestDefect.BrokenFraming ? brokenFraming : framing,
            split,
            MustBeRefused: !readOnly);
    }

    private static HostileCase Build(
        string label, string method, string target, List<KeyValuePair<string, string>> credentials, string? contentType, string? accept,
        List<KeyValuePair<string, string>> extra, byte[] body, Framing framing, int split, bool mustBeRefused)
    {
        var headers = new List<KeyValuePair<string, string>> { new("Host", "127.0.0.1") };
        headers.AddRange(credentials);
        if (contentType is not null)
        {
            headers.Add(new("Content-Type", contentType));
        }

        if (accept is not null)
        {
            headers.Add(new("Accept", accept));
        }

        headers.AddRange(extra);
        headers.Add(new("Connection", "close"));
        return new HostileCase(label, method, target, headers, body, framing, split, mustBeRefused);
    }
}
