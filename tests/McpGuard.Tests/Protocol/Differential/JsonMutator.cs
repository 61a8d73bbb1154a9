using System.Globalization;
using System.Text;
using CsCheck;

namespace McpGuard.Tests.Protocol.Differential;

/// <summary>A JSON value kept as written, so a mutation can change its spelling (escapes, case, duplicates) and not only its meaning.</summary>
internal abstract class JNode
{
    public abstract JNode Clone();

    public abstract void WriteTo(StringBuilder text);
}

/// <summary>An object; member names are raw JSON string text (escapes as written, no quotes), in order, duplicates allowed.</summary>
internal sealed class JObject(List<JMember> members) : JNode
{
    public List<JMember> Members { get; } = members;

    public override JNode Clone() => new JObject([.. Members.Select(m => new JMember(m.Name, m.Value.Clone()))]);

    public override void WriteTo(StringBuilder text)
    {
        text.Append('{');
        for (var i = 0; i < Members.Count; i++)
        {
            if (i > 0)
            {
                text.Append(',');
            }

            text.Append('"').Append(Members[i].Name).Append("\":");
            Members[i].Value.WriteTo(text);
        }

        text.Append('}');
    }
}

internal sealed class JMember(string name, JNode value)
{
    public string Name { get; set; } = name;

    public JNode Value { get; set; } = value;
}

internal sealed class JArray(List<JNode> items) : JNode
{
    public List<JNode> Items { get; } = items;

    public override JNode Clone() => new JArray([.. Items.Select(i => i.Clone())]);

    public override void WriteTo(StringBuilder text)
    {
        text.Append('[');
        for (var i = 0; i < Items.Count; i++)
        {
            if (i > 0)
            {
                text.Append(',');
            }

            Items[i].WriteTo(text);
        }

        text.Append(']');
    }
}

/// <summary>A string value: raw JSON string text, escapes as written, no quotes.</summary>
internal sealed class JString(string raw) : JNode
{
    public string Raw { get; set; } = raw;

    public override JNode Clone() => new JString(Raw);

    public override void WriteTo(StringBuilder text) => text.Append('"').Append(Raw).Append('"');
}

/// <summary>A number or literal (or any raw text), written as is.</summary>
internal sealed class JLiteral(string text) : JNode
{
    public string Text { get; } = text;

    public override JNode Clone() => new JLiteral(Text);

    public override void WriteTo(StringBuilder text) => text.Append(Text);
}

/// <summary>One mutation: what to do, and three numbers that pick where and how. Small numbers shrink well.</summary>
internal readonly record struct Mutation(int Kind, uint Where, uint How, uint What)
{
    public override string ToString() => $"{(MutationKind)Kind}({Where},{How},{What})";
}

internal enum MutationKind
{
    LetterCase,
    DuplicateMember,
    EscapeName,
    EscapeString,
    LoneSurrogate,
    Lookalike,
    Nest,
    SwapType,
    AddMember,
    RemoveMember,
    SetMethod,
    SetRoutingName,
    SwapMembers,
    EdgeId,
}

/// <summary>
/// Valid MCP bodies (tools/call, resources/read, prompts/get, initialize, notifications…) and mutations of them: letter
/// case, duplicates, escapes, lone surrogates, look-alike and decomposed Unicode, nesting, type swaps, extra and missing
/// members, and numbers at the edges. The generator draws a seed body and one to four mutations; CsCheck shrinks a
/// failing case towards fewer, simpler mutations.
/// </summary>
internal static class JsonMutator
{
    public static readonly string[] Seeds =
    [
        """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"premium_report","arguments":{"topic":"sales","n":2},"_meta":{"progressToken":"p1"}}}""",
        """{"jsonrpc":"2.0","id":"req-7","method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}""",
        """{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///secret.txt"}}""",
        """{"jsonrpc":"2.0","id":3,"method":"prompts/get","params":{"name":"summary","arguments":{"topic":"a"}}}""",
        """{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}""",
        """{"jsonrpc":"2.0","method":"notifications/initialized"}""",
        """{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"user"}}""",
        """{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"cursor":"abc"}}""",
        """{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi","name":"premium_report"}}}""",
    ];

    private static readonly string[] MemberNamePool =
    [
        "name", "Name", "NAME", "nAme", "method", "Method", "id", "ID", "params", "Params", "uri", "URI", "_meta", "_META",
        "arguments", "Arguments", "jsonrpc", "result", "error", "protocolVersion", "io.modelcontextprotocol/protocolVersion",
        "n\\u0061me", "na\\u006De", "m\\u0065thod", "x-vendor", "", "\\u0000", "tools/call",
    ];

    private static readonly string[] ValuePool =
    [
        "0", "-1", "1.5", "1e3", "true", "false", "null", "\"\"", "\"x\"", "[]", "{}", "\"tools/call\"", "\"premium_report\"",
        "\"echo\"", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "-0", "\"1\"", "{\"name\":\"premium_report\"}",
        "[\"premium_report\"]", "\"2.0\"", "2.0", "\"2026-07-28\"", "\"file:///etc/passwd\"", "\"prompts/get\"", "\"resources/read\"",
    ];

    private static readonly string[] MethodPool =
    [
        "tools/call", "Tools/Call", "TOOLS/CALL", "tools/call ", " tools/call", "tools\\/call", "tools\\u002Fcall", "tools/list",
        "resources/read", "prompts/get", "initialize", "notifications/initialized", "tools/call\\u0000", "tools／call", "ping",
    ];

    private static readonly string[] RoutingNamePool =
    [
        "premium_report", "Premium_Report", "PREMIUM_REPORT", "premium_report ", "premium\\u005freport", "premium_report\\u0000",
        "echo", "ｅｃｈｏ", "e\\u0301cho", "\\u00e9cho", "e\u0301cho", "\u00e9cho", "", "add", "summary", "file:///secret.txt", "file:///SECRET.txt",
    ];

    /// <summary>Unicode look-alikes and decompositions: (ASCII letter, replacement as raw JSON text).</summary>
    private static readonly (char Letter, string Raw)[] Lookalikes =
    [
        ('k', "\u212A"), ('k', "\\u212A"), ('s', "\u017F"), ('s', "\\u017f"), ('i', "\u0131"), ('i', "\u0130"), ('I', "\\u0130"),
        ('a', "\uFF41"), ('e', "e\u0301"), ('e', "\\u00e9"), ('n', "n\u200D"), ('m', "\uFEFFm"), ('a', "a\u00A0"), ('o', "\u043E"),
    ];

    private static readonly string[] SurrogatePool = ["\\ud800", "\\uDBFF", "\\udc00", "\\uDFFF", "\\udc00\\ud800", "\\ud83d", "\\ude00x", "\\ud800\\ud800\\udc00"];

    public static Gen<Mutation> MutationGen { get; } =
        Gen.Select(Gen.Int[0, Enum.GetValues<MutationKind>().Length - 1], Gen.UInt[0, 63], Gen.UInt[0, 63], Gen.UInt[0, 63])
            .Select((kind, where, how, what) => new Mutation(kind, where, how, what));

    /// <summary>A seed body and the mutations applied to it.</summary>
    public static Gen<(int Seed, Mutation[] Mutations)> CaseGen { get; } =
        Gen.Select(Gen.Int[0, Seeds.Length - 1], MutationGen.Array[1, 4]);

    public static string Build(int seed, IReadOnlyList<Mutation> mutations)
    {
        var root = Parse(Seeds[seed]);
        foreach (var mutation in mutations)
        {
            Apply(root, mutation);
        }

        var text = new StringBuilder();
        root.WriteTo(text);
        return text.ToString();
    }

    private static void Apply(JNode root, Mutation m)
    {
        var members = Members(root);
        var strings = Strings(root);
        var values = Values(root);
        switch ((MutationKind)m.Kind)
        {
            case MutationKind.LetterCase when members.Count > 0:
            {
                var (_, member) = members[(int)(m.Where % members.Count)];
                member.Name = FlipCase(member.Name, m.How | 1);
                break;
            }

            case MutationKind.DuplicateMember when members.Count > 0:
            {
                var (owner, member) = members[(int)(m.Where % members.Count)];
                var name = (m.How % 4) switch
                {
                    0 => member.Name,
                    1 => FlipCase(member.Name, m.How | 1),
                    2 => Escape(member.Name, m.How),
                    _ => FlipCase(Escape(member.Name, m.How >> 2), 1),
                };
                var value = m.What % 3 == 0 ? member.Value.Clone() : Parse(ValuePool[m.What % ValuePool.Length]);
                var at = owner.Members.IndexOf(member) + (m.What % 2 == 0 ? 1 : 0);
                owner.Members.Insert(at, new JMember(name, value));
                break;
            }

            case MutationKind.EscapeName when members.Count > 0:
            {
                var (_, member) = members[(int)(m.Where % members.Count)];
                member.Name = Escape(member.Name, m.How | 1);
                break;
            }

            case MutationKind.EscapeString when strings.Count > 0:
            {
                var target = strings[(int)(m.Where % strings.Count)];
                target.Raw = Escape(target.Raw, m.How | 1);
                break;
            }

            case MutationKind.LoneSurrogate:
            {
                var surrogate = SurrogatePool[m.What % SurrogatePool.Length];
                if (m.How % 2 == 0 && strings.Count > 0)
                {
                    var target = strings[(int)(m.Where % strings.Count)];
                    target.Raw = InsertAt(target.Raw, m.How >> 1, surrogate);
                }
                else if (members.Count > 0)
                {
                    var (_, member) = members[(int)(m.Where % members.Count)];
                    member.Name = InsertAt(member.Name, m.How >> 1, surrogate);
                }

                break;
            }

            case MutationKind.Lookalike:
            {
                var (letter, raw) = Lookalikes[m.What % Lookalikes.Length];
                if (m.How % 2 == 0 && members.Count > 0)
                {
                    var (_, member) = members[(int)(m.Where % members.Count)];
                    member.Name = ReplaceLetter(member.Name, letter, raw);
                }
                else if (strings.Count > 0)
                {
                    var target = strings[(int)(m.Where % strings.Count)];
                    target.Raw = ReplaceLetter(target.Raw, letter, raw);
                }

                break;
            }

            case MutationKind.Nest when values.Count > 0:
            {
                var slot = values[(int)(m.Where % values.Count)];
                JNode nested = slot.Get();
                for (var level = 0; level <= m.How % 3; level++)
                {
                    nested = m.What % 2 == 0 ? new JArray([nested]) : new JObject([new JMember(m.What % 4 == 1 ? "name" : "value", nested)]);
                }

                slot.Set(nested);
                break;
            }

            case MutationKind.SwapType when values.Count > 0:
                values[(int)(m.Where % values.Count)].Set(Parse(ValuePool[m.What % ValuePool.Length]));
                break;

            case MutationKind.AddMember:
            {
                var objects = Objects(root);
                var owner = objects[(int)(m.Where % objects.Count)];
                var member = new JMember(MemberNamePool[m.How % MemberNamePool.Length], Parse(ValuePool[m.What % ValuePool.Length]));
                owner.Members.Insert((int)(m.What % (owner.Members.Count + 1)), member);
                break;
            }

            case MutationKind.RemoveMember when members.Count > 0:
            {
                var (owner, member) = members[(int)(m.Where % members.Count)];
                owner.Members.Remove(member);
                break;
            }

            case MutationKind.SetMethod:
                SetMember(root, "method", $"\"{MethodPool[m.What % MethodPool.Length]}\"");
                break;

            case MutationKind.SetRoutingName:
            {
                var objects = Objects(root);
                var owner = objects[(int)(m.Where % objects.Count)];
                var name = m.How % 3 == 0 ? "uri" : "name";
                var value = $"\"{RoutingNamePool[m.What % RoutingNamePool.Length]}\"";
                var existing = owner.Members.FirstOrDefault(x => x.Name == name);
                if (existing is not null)
                {
                    existing.Value = Parse(value);
                }
                else
                {
                    owner.Members.Add(new JMember(name, Parse(value)));
                }

                break;
            }

            case MutationKind.SwapMembers when members.Count > 0:
            {
                var (owner, member) = members[(int)(m.Where % members.Count)];
                var i = owner.Members.IndexOf(member);
                var j = (int)(m.How % owner.Members.Count);
                (owner.Members[i], owner.Members[j]) = (owner.Members[j], owner.Members[i]);
                break;
            }

            case MutationKind.EdgeId:
            {
                string[] ids = ["9223372036854775807", "-9223372036854775808", "9223372036854775808", "1e2", "1.0", "-0", "0.5", "\"1\"", "1E+2", "00", "null", "\"\"", "[1]", "{}", "true", "\"\\ud800\""];
                SetMember(root, "id", ids[m.What % ids.Length]);
                break;
            }
        }
    }

    private static void SetMember(JNode root, string name, string rawValue)
    {
        if (root is not JObject obj)
        {
            return;
        }

        var existing = obj.Members.FirstOrDefault(x => x.Name == name);
        if (existing is not null)
        {
            existing.Value = Parse(rawValue);
        }
        else
        {
            obj.Members.Add(new JMember(name, Parse(rawValue)));
        }
    }

    private static string FlipCase(string raw, uint mask)
    {
        var chars = raw.ToCharArray();
        var bit = 0;
        for (var i = 0; i < chars.Length; i++)
        {
            if (chars[i] == '\\')
            {
                // Leave escapes intact (\u0041 stays an escape; flipping its 'u' would break the JSON).
                i += chars[i + 1] == 'u' ? 5 : 1;
                continue;
            }

            if (char.IsAsciiLetter(chars[i]) && ((mask >> (bit++ % 32)) & 1) == 1)
            {
                chars[i] = char.IsAsciiLetterUpper(chars[i]) ? char.ToLowerInvariant(chars[i]) : char.ToUpperInvariant(chars[i]);
            }
        }

        return new string(chars);
    }

    /// <summary>Writes some plain characters of raw JSON string text as \uXXXX escapes (upper- or lower-case hex).</summary>
    private static string Escape(string raw, uint mask)
    {
        var text = new StringBuilder();
        var bit = 0;
        for (var i = 0; i < raw.Length; i++)
        {
            if (raw[i] == '\\')
            {
                var length = raw[i + 1] == 'u' ? 6 : 2;
                text.Append(raw, i, length);
                i += length - 1;
                continue;
            }

            if (((mask >> (bit++ % 32)) & 1) == 1 && !char.IsSurrogate(raw[i]))
            {
                text.Append("\\u").Append(((int)raw[i]).ToString((mask & 0x80000000) != 0 ? "X4" : "x4", CultureInfo.InvariantCulture));
            }
            else
            {
                text.Append(raw[i]);
            }
        }

        return text.ToString();
    }

    private static string InsertAt(string raw, uint position, string insert)
    {
        // Only between whole characters and escapes, so the JSON stays well-formed.
        var boundaries = new List<int> { 0 };
        for (var i = 0; i < raw.Length; i++)
        {
            if (raw[i] == '\\')
            {
                i += raw[i + 1] == 'u' ? 5 : 1;
            }
            else if (char.IsHighSurrogate(raw[i]))
            {
                i++;
            }

            boundaries.Add(i + 1);
        }

        var at = boundaries[(int)(position % boundaries.Count)];
        return raw.Insert(at, insert);
    }

    private static string ReplaceLetter(string raw, char letter, string replacement)
    {
        for (var i = 0; i < raw.Length; i++)
        {
            if (raw[i] == '\\')
            {
                i += raw[i + 1] == 'u' ? 5 : 1;
                continue;
            }

            if (char.ToLowerInvariant(raw[i]) == char.ToLowerInvariant(letter))
            {
                return string.Concat(raw.AsSpan(0, i), replacement, raw.AsSpan(i + 1));
            }
        }

        return raw + replacement;
    }

    // ---- the tree ----

    private static List<(JObject Owner, JMember Member)> Members(JNode root)
    {
        var list = new List<(JObject, JMember)>();
        Visit(root, node =>
        {
            if (node is JObject obj)
            {
                list.AddRange(obj.Members.Select(m => (obj, m)));
            }
        });
        return list;
    }

    private static List<JObject> Objects(JNode root)
    {
        var list = new List<JObject>();
        Visit(root, node =>
        {
            if (node is JObject obj)
            {
                list.Add(obj);
            }
        });
        return list;
    }

    private static List<JString> Strings(JNode root)
    {
        var list = new List<JString>();
        Visit(root, node =>
        {
            if (node is JString s)
            {
                list.Add(s);
            }
        });
        return list;
    }

    /// <summary>A place that holds a value: a member's value or an array item.</summary>
    private sealed record Slot(Func<JNode> Get, Action<JNode> Set);

    private static List<Slot> Values(JNode root)
    {
        var list = new List<Slot>();
        Visit(root, node =>
        {
            if (node is JObject obj)
            {
                list.AddRange(obj.Members.Select(m => new Slot(() => m.Value, v => m.Value = v)));
            }
            else if (node is JArray array)
            {
                for (var i = 0; i < array.Items.Count; i++)
                {
                    var index = i;
                    list.Add(new Slot(() => array.Items[index], v => array.Items[index] = v));
                }
            }
        });
        return list;
    }

    private static void Visit(JNode node, Action<JNode> visit)
    {
        visit(node);
        switch (node)
        {
            case JObject obj:
                foreach (var member in obj.Members)
                {
                    Visit(member.Value, visit);
                }

                break;
            case JArray array:
                foreach (var item in array.Items)
                {
                    Visit(item, visit);
                }

                break;
        }
    }

    /// <summary>Reads well-formed JSON into the tree, keeping strings and names as written.</summary>
    public static JNode Parse(string json)
    {
        var position = 0;
        var node = ParseValue(json, ref position);
        return node;
    }

    private static JNode ParseValue(string json, ref int i)
    {
        SkipWhitespace(json, ref i);
        switch (json[i])
        {
            case '{':
            {
                i++;
                var members = new List<JMember>();
                SkipWhitespace(json, ref i);
                if (json[i] == '}')
                {
                    i++;
                    return new JObject(members);
                }

                while (true)
                {
                    SkipWhitespace(json, ref i);
                    var name = ParseStringRaw(json, ref i);
                    SkipWhitespace(json, ref i);
                    i++; // ':'
                    members.Add(new JMember(name, ParseValue(json, ref i)));
                    SkipWhitespace(json, ref i);
                    if (json[i++] == '}')
                    {
                        return new JObject(members);
                    }
                }
            }

            case '[':
            {
                i++;
                var items = new List<JNode>();
                SkipWhitespace(json, ref i);
                if (json[i] == ']')
                {
                    i++;
                    return new JArray(items);
                }

                while (true)
                {
                    items.Add(ParseValue(json, ref i));
                    SkipWhitespace(json, ref i);
                    if (json[i++] == ']')
                    {
                        return new JArray(items);
                    }
                }
            }

            case '"':
                return new JString(ParseStringRaw(json, ref i));

            default:
            {
                var start = i;
                while (i < json.Length && json[i] is not (',' or '}' or ']' or ' '))
                {
                    i++;
                }

                return new JLiteral(json[start..i]);
            }
        }
    }

    private static string ParseStringRaw(string json, ref int i)
    {
        var start = ++i;
        while (json[i] != '"')
        {
            i += json[i] == '\\' ? 2 : 1;
        }

        return json[start..i++];
    }

    private static void SkipWhitespace(string json, ref int i)
    {
        while (i < json.Length && char.IsWhiteSpace(json[i]))
        {
            i++;
        }
    }
}
