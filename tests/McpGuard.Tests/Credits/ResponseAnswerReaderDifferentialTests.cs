using System.Collections.Immutable;
using System.Globalization;
using System.Text;
using System.Text.Json;
using CsCheck;
using McpGuard.Credits;
using McpGuard.Protocol;

namespace McpGuard.Tests.Credits;

/// <summary>
/// A charge stands only on the answer the server really wrote: the settlement reader, which scans the response bytes as
/// they pass, must find the same answer as System.Text.Json reading the whole body. Generated JSON-RPC messages (members
/// in any order, names and strings escaped or not, the members settlement looks at placed at the right depth and at
/// wrong ones, ids of the right and wrong value and type), framed as one <c>application/json</c> body or as an event
/// stream with other messages, comments and fields around the answer, cut into chunks of any size.
/// </summary>
public sealed class ResponseAnswerReaderDifferentialTests
{
    private static readonly string? Seed = Environment.GetEnvironmentVariable("CsCheck_Seed");
    private static readonly int Iterations = int.TryParse(Environment.GetEnvironmentVariable("MCPGUARD_ANSWER_READER_ITER"), out var n) ? n : 4_000;

    // Long ids too: the reader must read an id as long as the request's, however the server escapes it.
    private static readonly string LongId = "req-" + new string('a', 300);
    private static readonly string EscapedId = string.Concat(Enumerable.Repeat("<é&'+", 60));

    private static readonly JsonRpcId[] RequestIds = [new(5), new(-3), new(12_345_678_901), new("req-5"), new(LongId), new(EscapedId)];

    [Fact]
    public void The_reader_finds_the_answer_System_Text_Json_finds_in_a_json_body()
    {
        Gen.Select(Gen.Int[0, RequestIds.Length - 1], Message(sse: false), Gen.Int[1, 64].Array[1, 12]).Sample((which, message, chunks) =>
        {
            var id = RequestIds[which];
            var expected = Expected(message, id);
            var actual = ResponseAnswerReaderTests.Read("application/json", Encoding.UTF8.GetBytes(message), id, chunks);
            return actual == expected;
        }, iter: Iterations, seed: Seed, print: t => $"id {RequestIds[t.Item1]}: {t.Item2}");
    }

    [Fact]
    public void The_reader_finds_the_first_answer_System_Text_Json_finds_in_an_event_stream()
    {
        var events = Gen.Select(Message(sse: true).Array[1, 4], Gen.Bool, Gen.Int[0, 3].Array[4], Gen.Bool);
        Gen.Select(Gen.Int[0, RequestIds.Length - 1], events, Gen.Int[1, 64].Array[1, 12]).Sample((which, stream, chunks) =>
        {
            var id = RequestIds[which];
            var (messages, crlf, extras, noSpace) = stream;
            var body = EventStream(messages, crlf, extras, noSpace);
            var expected = messages.Select(m => Expected(m, id)).FirstOrDefault(a => a != AnswerKind.None);
            var actual = ResponseAnswerReaderTests.Read("text/event-stream", Encoding.UTF8.GetBytes(body), id, chunks);
            return actual == expected;
        }, iter: Iterations, seed: Seed, print: t => $"id {RequestIds[t.Item1]}: {EventStream(t.Item2.Item1, t.Item2.Item2, t.Item2.Item3, t.Item2.Item4)}");
    }

    /// <summary>The documented rules, applied by System.Text.Json to the whole message.</summary>
    private static AnswerKind Expected(string message, JsonRpcId id)
    {
        using var document = JsonDocument.Parse(message, new JsonDocumentOptions { MaxDepth = 1_000 });
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("id", out var idValue))
        {
            return AnswerKind.None;
        }

        var hasResult = root.TryGetProperty("result", out var result);
        var hasError = root.TryGetProperty("error", out _);
        if ((!hasResult && !hasError) || !SameId(idValue, id))
        {
            return AnswerKind.None;
        }

        if (hasError)
        {
            return AnswerKind.Error;
        }

        if (result.ValueKind != JsonValueKind.Object)
        {
            return AnswerKind.Result;
        }

        if (result.TryGetProperty("resultType", out var resultType) && resultType.ValueKind == JsonValueKind.String && resultType.GetString() != "complete")
        {
            return AnswerKind.Incomplete;
        }

        var isError = result.TryGetProperty("isError", out var flag) && flag.ValueKind == JsonValueKind.True;
        var reason = result.TryGetProperty("structuredContent", out var structured) && structured.ValueKind == JsonValueKind.Object
            && structured.TryGetProperty("reason", out var text) && text.ValueKind == JsonValueKind.String ? text.GetString() : null;
        return isError && reason == "internal_error" ? AnswerKind.ToolInternalError : AnswerKind.Result;
    }

    private static bool SameId(JsonElement value, JsonRpcId id) => id.ToObject() switch
    {
        string expected => value.ValueKind == JsonValueKind.String && value.GetString() == expected,
        long expected => value.ValueKind == JsonValueKind.Number
            && long.TryParse(value.GetRawText(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var written) && written == expected,
        _ => false,
    };

    /// <summary>Events with one message each, with comments and other fields before some of them.</summary>
    private static string EventStream(string[] messages, bool crlf, int[] extras, bool noSpace)
    {
        var end = crlf ? "\r\n" : "\n";
        var text = new StringBuilder();
        for (var i = 0; i < messages.Length; i++)
        {
            switch (extras[i % extras.Length])
            {
                case 1:
                    text.Append(": keep-alive {\"id\":5,\"result\":{}}").Append(end);
                    break;
                case 2:
                    text.Append("id: ").Append(i).Append(end).Append("retry: 10").Append(end);
                    break;
                case 3:
                    text.Append(':').Append(end).Append(end);
                    break;
            }

            text.Append("event: message").Append(end).Append(noSpace ? "data:" : "data: ").Append(messages[i]).Append(end).Append(end);
        }

        return text.ToString();
    }

    // ---- generators: valid JSON text, as a server writes it, with the members settlement looks at in and out of place ----

    private static Gen<string> Message(bool sse)
    {
        var space = sse ? Gen.OneOf<string>("", "", "", " ", "\t") : Gen.OneOf<string>("", "", "", " ", "\n", "\r\n  ", "\t");
        var id = Gen.OneOf(
            Gen.OneOf<string>("5", "-3", "12345678901", "6", "0", "5.0", "5e0", "-0", "1e2", "\"5\"", "null", "{}", "[5]", "true"),
            JsonString(Gen.OneOf<string>("req-5", "req-6", "req-", "5", "", LongId, LongId[..^1] + "b", LongId + "a", EscapedId, EscapedId[1..])));
        var resultObject = Members(space, [
            ("isError", Gen.OneOf<string>("true", "false", "\"true\"", "1", "null")),
            ("resultType", Gen.OneOf(JsonString(Gen.OneOf<string>("complete", "input_required", "incomplete", "")), Gen.OneOf<string>("1", "null", "{}"))),
            ("structuredContent", Gen.OneOf(Members(space, [
                ("reason", Gen.OneOf(JsonString(Gen.OneOf<string>("internal_error", "not_found", "internal_error ", "")), Gen.OneOf<string>("1", "null"))),
                ("nested", Nested(space)),
            ]), Gen.OneOf<string>("[]", "null", "\"internal_error\""))),
            ("content", Gen.OneOf(Gen.Const("[{\"type\":\"text\",\"text\":\"{\\\"id\\\":5,\\\"error\\\":{}}\"}]"), Nested(space))),
            ("_meta", Gen.OneOf(Members(space, [("resultType", JsonString(Gen.Const("input_required"))), ("isError", Gen.Const("true"))]), Nested(space))),
        ]);
        var result = Gen.Frequency((8, resultObject), (1, Gen.OneOf<string>("[]", "null", "5", "\"x\"", "[{\"isError\":true}]")));
        var error = Gen.OneOf(Gen.Const("{\"code\":-32602,\"message\":\"no\"}"), Nested(space));
        var message = Members(space, [
            ("jsonrpc", Gen.Const("\"2.0\"")),
            ("id", id),
            ("result", result),
            ("error", error),
            ("method", JsonString(Gen.OneOf<string>("notifications/progress", "tools/call"))),
            ("params", Members(space, [("id", id), ("result", result)])),
        ]);
        return Gen.Frequency((20, message), (1, Gen.Select(message, space, (m, s) => "[" + s + m + s + "]")));
    }

    /// <summary>An object holding each candidate member with some probability, once, in a random order, names escaped or not.</summary>
    private static Gen<string> Members(Gen<string> space, (string Name, Gen<string> Value)[] candidates)
    {
        var chosen = Gen.Const(ImmutableList<string?>.Empty);
        foreach (var (name, value) in candidates)
        {
            var member = Gen.Select(Gen.Int[0, 3], Name(name), value, (keep, n, v) => keep == 0 ? null : n + ":" + v);
            chosen = Gen.Select(chosen, member, (list, m) => list.Add(m));
        }

        return Gen.Select(chosen, Gen.Shuffle(Enumerable.Range(0, candidates.Length).ToArray()), space, space, (members, order, s1, s2) =>
        {
            var present = order.Select(i => members[i]).Where(m => m is not null).Select(m => s1 + m + s2);
            return "{" + string.Join(",", present) + "}";
        });
    }

    /// <summary>A value with the names settlement looks at, one or two levels down, where they must not count.</summary>
    private static Gen<string> Nested(Gen<string> space) =>
        Gen.OneOf(
            Members(space, [("id", Gen.Const("5")), ("result", Gen.Const("{}")), ("error", Gen.Const("{}")), ("isError", Gen.Const("true"))]),
            Gen.Select(Members(space, [("resultType", JsonString(Gen.Const("input_required"))), ("reason", JsonString(Gen.Const("internal_error")))]), o => "[1,[]," + o + ",\"]\"]"),
            JsonString(Gen.OneOf<string>("{\"id\":5,\"result\":{}}", "\\\"}]", "plain")),
            Gen.OneOf<string>("[]", "[[]]", "{}", "-1.5e3", "null", "false"),
            Gen.Select(Gen.Int[1, 130], Gen.Bool, (depth, objects) => Deep(depth, objects)));

    /// <summary>Arrays (or objects and arrays) nested this deep around an object and a number: closing brackets to count.</summary>
    private static string Deep(int depth, bool objects)
    {
        var open = new StringBuilder();
        var close = new StringBuilder();
        for (var i = 0; i < depth; i++)
        {
            var asObject = objects && i % 3 == 1 && i < depth - 1;
            open.Append(asObject ? "{\"k\":" : "[");
            close.Insert(0, asObject ? "}" : "]");
        }

        return open + "{},0" + close;
    }

    private static Gen<string> Name(string name) => JsonString(Gen.Const(name));

    /// <summary>A JSON string of the text, each character written as itself or \u-escaped, and quotes and backslashes always escaped.</summary>
    private static Gen<string> JsonString(Gen<string> text) =>
        Gen.Select(text, Gen.Bool.Array[24], (value, escape) =>
        {
            var written = new StringBuilder("\"");
            for (var i = 0; i < value.Length; i++)
            {
                var c = value[i];
                if (c is '"' or '\\')
                {
                    written.Append('\\').Append(c);
                }
                else if (escape[i % escape.Length] || c < ' ')
                {
                    written.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                }
                else
                {
                    written.Append(c);
                }
            }

            return written.Append('"').ToString();
        });
}
