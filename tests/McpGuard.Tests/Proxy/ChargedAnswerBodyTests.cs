using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using McpGuard.Credits;
using McpGuard.Protocol;
using McpGuard.Proxy;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace McpGuard.Tests.Proxy;

/// <summary>
/// <see cref="ChargedAnswerBody"/> on its own: whatever the framing of the upstream's event stream and wherever its bytes
/// are cut, every event but the answer passes byte for byte and as soon as it ends, and the answer gets its charge; a
/// JSON answer gets the charge and its new length; what is not this call's answer passes unchanged.
/// </summary>
public sealed class ChargedAnswerBodyTests
{
    private const string RequestId = "req-1";

    private static readonly JsonObject Charge = new() { ["charged_micro"] = 800, ["balance_micro"] = 999_200, ["request_id"] = RequestId };

    /// <summary>One event of a generated stream: its lines (without the blank line that ends it).</summary>
    public sealed record SseEvent(string[] Lines, bool IsAnswer);

    /// <summary>One generated stream: the events, the line ends used in turn, and where its bytes are cut.</summary>
    public sealed record Framing(SseEvent[] Events, string[] Endings, int[] Cuts, bool OneByteAtATime, bool ErrorAnswer)
    {
        public override string ToString() =>
            $"{(ErrorAnswer ? "error answer" : "result answer")}, endings [{string.Join(",", Endings.Select(Show))}], cuts [{string.Join(",", Cuts)}]{(OneByteAtATime ? ", byte at a time" : string.Empty)}\n"
            + string.Join("\n", Events.Select(e => (e.IsAnswer ? "ANSWER " : "event ") + string.Join(" | ", e.Lines)));
    }

    private static string Show(string text) => text.Replace("\r", "\\r").Replace("\n", "\\n");

    private static Gen<string[]> DataLines(JsonNode message) =>
        from pretty in Gen.Bool
        from noSpace in Gen.Bool
        select message.ToJsonString(new JsonSerializerOptions { WriteIndented = pretty }).Split('\n')
            .Select((line, i) => (noSpace && i % 2 == 1 ? "data:" : "data: ") + line).ToArray();

    private static Gen<string[]> Optional(string line) => Gen.Bool.Select(b => b ? new[] { line } : []);

    /// <summary>An event that is not the answer: a notification (with any fields), another id's answer, text, a comment, an empty data line.</summary>
    private static readonly Gen<SseEvent> Other =
        Gen.OneOf(
            from n in Gen.Int[1, 99]
            from comment in Optional(": ping")
            from name in Optional("event: message")
            from id in Optional($"id: e{n}")
            from data in DataLines(JsonNode.Parse($$$"""{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":{{{n}}},"message":"step\nwith a break"}}""")!)
            from retry in Optional("retry: 100")
            select new SseEvent([.. comment, .. name, .. id, .. data, .. retry], false),
            from data in DataLines(JsonNode.Parse("""{"jsonrpc":"2.0","id":2,"result":{"content":[],"_meta":{"mcpguard/units":3}}}""")!)
            select new SseEvent(data, false),
            Gen.Const(new SseEvent(["data: not json", "data: {"], false)),
            Gen.Const(new SseEvent([": keep-alive"], false)),
            Gen.Const(new SseEvent(["data"], false)),
            Gen.Const(new SseEvent(["dat: x", "datum: y", "data : z"], false)));

    private static Gen<SseEvent> Answer(bool error) =>
        from name in Optional("event: message")
        from id in Optional("id: a1")
        from meta in Gen.Int[0, 3]
        from data in DataLines(JsonNode.Parse(error
            ? """{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"boom"}}"""
            : meta switch
            {
                0 => """{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"5"}]}}""",
                1 => """{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"5"}],"_meta":{"trace":"t1"}}}""",
                2 => """{"jsonrpc":"2.0","id":1,"result":{"_meta":{"mcpguard/units":7},"content":[]}}""",
                _ => """{"id":1,"result":{"content":[],"_meta":{"mcpguard/units":7,"trace":"t2"}},"jsonrpc":"2.0"}""",
            })!)
        from retry in Optional("retry: 7")
        select new SseEvent([.. name, .. id, .. data, .. retry], true);

    private static readonly Gen<Framing> Streams =
        from before in Other.Array[0, 3]
        from error in Gen.Int[0, 5].Select(n => n == 0)
        from answer in Answer(error)
        from after in Other.Array[0, 2]
        from endings in Gen.OneOf(Gen.Const("\n"), Gen.Const("\r\n"), Gen.Const("\r")).Array[1, 4]
        from cuts in Gen.Int[0, 100_000].Array[0, 8]
        from oneByte in Gen.Int[0, 9].Select(n => n == 0)
        select new Framing([.. before, answer, .. after], endings, cuts, oneByte, error);

    [Fact]
    public async Task Every_event_but_the_answer_passes_byte_for_byte_as_it_ends_and_the_answer_gets_its_charge()
    {
        await Streams.SampleAsync(async stream =>
        {
            var (input, expected, dispatches, answerDispatch) = Frame(stream);
            var (body, sink, _) = Create("text/event-stream");
            var cuts = stream.OneByteAtATime
                ? Enumerable.Range(1, input.Length)
                : stream.Cuts.Select(c => c % (input.Length + 1)).Append(input.Length).Order().Distinct();
            var start = 0;
            foreach (var cut in cuts)
            {
                await body.Stream.WriteAsync(input.AsMemory(start, cut - start));
                start = cut;
                var output = sink.Written;

                // Nothing but the expected bytes, in order.
                Assert.True(expected.AsSpan().StartsWith(output), $"after {cut} bytes the output is not a prefix of the expected: {Show(Encoding.UTF8.GetString(output))}");

                // Each event before the answer went out as soon as it ended (its blank line began).
                foreach (var dispatch in dispatches.Where(d => d <= cut && d < answerDispatch))
                {
                    Assert.True(output.Length >= dispatch, $"after {cut} bytes an event ending at {dispatch} is still held (output {output.Length})");
                }

                // Once the answer went out, every byte passes at once.
                var delta = expected.Length - input.Length;
                if (cut >= answerDispatch)
                {
                    Assert.Equal(cut + delta, output.Length);
                }
            }

            await body.FinishAsync(CancellationToken.None);
            Assert.Equal(Encoding.UTF8.GetString(expected), Encoding.UTF8.GetString(sink.Written));
        },
        iter: 2000,
        print: s => s.ToString());
    }

    [Fact]
    public async Task Every_split_point_of_a_crlf_stream_gives_the_same_output()
    {
        const string Input =
            ": hi\r\nevent: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"p\",\"progress\":1}}\r\n\r\n"
            + "event: message\r\nid: 2\r\ndata: {\"jsonrpc\":\"2.0\",\r\ndata: \"id\":1,\"result\":{\"content\":[],\"_meta\":{\"mcpguard/units\":7}}}\r\nretry: 5\r\n\r\n"
            + "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"after\"}}\r\n\r\n";
        const string Expected =
            ": hi\r\nevent: message\r\nid: 1\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":\"p\",\"progress\":1}}\r\n\r\n"
            + "event: message\r\nid: 2\r\nretry: 5\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[],\"_meta\":{\"mcpguard/charge\":{\"charged_micro\":800,\"balance_micro\":999200,\"request_id\":\"req-1\"}}}}\n\r\n"
            + "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"after\"}}\r\n\r\n";
        var input = Encoding.UTF8.GetBytes(Input);
        for (var first = 0; first <= input.Length; first++)
        {
            for (var second = first; second <= input.Length; second += 7)
            {
                var (body, sink, _) = Create("text/event-stream");
                await body.Stream.WriteAsync(input.AsMemory(0, first));
                await body.Stream.WriteAsync(input.AsMemory(first, second - first));
                await body.Stream.WriteAsync(input.AsMemory(second));
                await body.FinishAsync(CancellationToken.None);
                Assert.True(Expected == Encoding.UTF8.GetString(sink.Written), $"cut at {first} and {second}: {Show(Encoding.UTF8.GetString(sink.Written))}");
            }
        }
    }

    [Theory]
    [InlineData("a byte order mark", "\uFEFFdata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"_meta\":{\"mcpguard/charge\":{\"charged_micro\":800,\"balance_micro\":999200,\"request_id\":\"req-1\"}}}}\n\n")]
    [InlineData("an answer the stream never ended", "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}",
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"_meta\":{\"mcpguard/charge\":{\"charged_micro\":800,\"balance_micro\":999200,\"request_id\":\"req-1\"}}}}\n")]
    [InlineData("another id", "data: {\"jsonrpc\":\"2.0\",\"id\":\"1\",\"result\":{}}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1.0,\"result\":{}}\n\n", null)]
    [InlineData("an error", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-1,\"message\":\"no\"},\"result\":{}}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n", null)]
    [InlineData("a result that is not an object", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":[]}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n", null)]
    [InlineData("duplicate members", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{},\"result\":{}}\n\n", null)]
    [InlineData("a request of the server's", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"sampling/createMessage\",\"params\":{}}\n\n", null)]
    [InlineData("input required", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"resultType\":\"input_required\"}}\n\n", null)]
    [InlineData("input required with units", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"resultType\":\"input_required\",\"_meta\":{\"mcpguard/units\":2}}}\n\n",
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"resultType\":\"input_required\"}}\n\n")]
    [InlineData("not UTF-8", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"x\":\"\u00ff\"}}\n\n", null)]
    public async Task An_event_stream_passes_unchanged_unless_it_answers_the_call_with_a_result(string name, string input, string? expected)
    {
        var bytes = name == "not UTF-8" ? Encoding.Latin1.GetBytes(input) : Encoding.UTF8.GetBytes(input);
        var (body, sink, _) = Create("text/event-stream");

        await body.Stream.WriteAsync(bytes);
        await body.FinishAsync(CancellationToken.None);

        Assert.True((expected is null ? bytes : Encoding.UTF8.GetBytes(expected)).AsSpan().SequenceEqual(sink.Written), $"{name}: {Show(Encoding.Latin1.GetString(sink.Written))}");
    }

    [Fact]
    public async Task An_event_too_large_to_hold_passes_as_it_came_and_the_answer_after_it_still_gets_its_charge()
    {
        var large = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"data\":\"" + new string('x', ChargedAnswerBody.MaxBytes) + "\"}}\n\n";
        const string Answer = "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
        var input = Encoding.UTF8.GetBytes(large + Answer);
        var (body, sink, _) = Create("text/event-stream");

        for (var i = 0; i < input.Length; i += 65_536)
        {
            await body.Stream.WriteAsync(input.AsMemory(i, Math.Min(65_536, input.Length - i)));
        }

        await body.FinishAsync(CancellationToken.None);

        // The large event passed byte for byte (from the limit on, as it came), without being read.
        var written = sink.Written;
        Assert.True(written.AsSpan().StartsWith(Encoding.UTF8.GetBytes(large)));
        Assert.Equal(
            "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"_meta\":{\"mcpguard/charge\":{\"charged_micro\":800,\"balance_micro\":999200,\"request_id\":\"req-1\"}}}}\n\n",
            Encoding.UTF8.GetString(written.AsSpan(large.Length)));
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":1,"result":{"content":[]}}""",
        """{"jsonrpc":"2.0","id":1,"result":{"content":[],"_meta":{"mcpguard/charge":{"charged_micro":800,"balance_micro":999200,"request_id":"req-1"}}}}""")]
    [InlineData(""" { "jsonrpc": "2.0", "id": 1, "result": { "_meta": { "mcpguard/units": 4 } } } """,
        """{"jsonrpc":"2.0","id":1,"result":{"_meta":{"mcpguard/charge":{"charged_micro":800,"balance_micro":999200,"request_id":"req-1"}}}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"Unknown tool"}}""", null)]
    [InlineData("""{"jsonrpc":"2.0","id":2,"result":{}}""", null)]
    [InlineData("""{"jsonrpc":"2.0","id":1,"result":{"_meta":"x"}}""", null)]
    [InlineData("""{"jsonrpc":"2.0","id":1,"result":{}""", null)]
    public async Task A_json_answer_is_held_whole_and_goes_out_with_its_charge_and_new_length(string input, string? expected)
    {
        var (body, sink, response) = Create("application/json");
        response.ContentLength = Encoding.UTF8.GetByteCount(input);

        // YARP writes and flushes chunk by chunk: nothing reaches the client before the answer is whole.
        var bytes = Encoding.UTF8.GetBytes(input);
        for (var i = 0; i < bytes.Length; i += 5)
        {
            await body.Stream.WriteAsync(bytes.AsMemory(i, Math.Min(5, bytes.Length - i)));
            await body.Stream.FlushAsync();
            Assert.Empty(sink.Written);
            Assert.Equal(0, sink.Flushes);
        }

        await body.FinishAsync(CancellationToken.None);

        var sent = expected ?? input;
        Assert.Equal(sent, Encoding.UTF8.GetString(sink.Written));
        Assert.Equal(Encoding.UTF8.GetByteCount(sent), response.ContentLength);
    }

    [Fact]
    public async Task A_failed_status_or_another_content_type_passes_as_it_comes()
    {
        foreach (var (status, contentType) in new[] { (500, "application/json"), (200, "text/plain") })
        {
            var (body, sink, response) = Create(contentType);
            response.StatusCode = status;
            const string Answer = """{"jsonrpc":"2.0","id":1,"result":{}}""";

            await body.Stream.WriteAsync(Encoding.UTF8.GetBytes(Answer));
            Assert.Equal(Answer, Encoding.UTF8.GetString(sink.Written));
            await body.FinishAsync(CancellationToken.None);
            Assert.Equal(Answer, Encoding.UTF8.GetString(sink.Written));
        }
    }

    /// <summary>The stream's bytes; what the body must write; where each event's blank line begins; where the answer's does.</summary>
    private static (byte[] Input, byte[] Expected, List<int> Dispatches, int AnswerDispatch) Frame(Framing stream)
    {
        var input = new StringBuilder();
        var expected = new StringBuilder();
        var dispatches = new List<int>();
        var answerDispatch = -1;
        var previous = string.Empty;
        var n = 0;
        string Ending(string line)
        {
            // CR ending one line and LF ending an empty one would read as one CRLF: the empty line would be lost.
            var ending = stream.Endings[n++ % stream.Endings.Length];
            ending = previous == "\r" && line.Length == 0 && ending == "\n" ? "\r\n" : ending;
            previous = ending;
            return ending;
        }

        foreach (var e in stream.Events)
        {
            var rewrite = e.IsAnswer && !stream.ErrorAnswer;
            var firstData = Array.FindIndex(e.Lines, ToolListRewriter.IsData);
            for (var i = 0; i < e.Lines.Length; i++)
            {
                var line = e.Lines[i] + Ending(e.Lines[i]);
                input.Append(line);
                if (!rewrite || i < firstData)
                {
                    expected.Append(line);
                }
            }

            if (rewrite)
            {
                // The held part (from the first data line) goes out as its other lines, then the one rewritten data line.
                var held = e.Lines[firstData..];
                foreach (var line in held.Where(l => !ToolListRewriter.IsData(l)))
                {
                    expected.Append(line).Append('\n');
                }

                var message = JsonNode.Parse(string.Join('\n', held.Where(ToolListRewriter.IsData).Select(l => l.StartsWith("data: ", StringComparison.Ordinal) ? l[6..] : l[5..])))!;
                var result = message["result"]!.AsObject();
                var meta = result["_meta"] as JsonObject;
                if (meta is null)
                {
                    meta = [];
                    result["_meta"] = meta;
                }

                meta.Remove("mcpguard/units");
                meta["mcpguard/charge"] = Charge.DeepClone();
                expected.Append("data: ").Append(message.ToJsonString()).Append('\n');
            }

            var blank = Ending(string.Empty);
            dispatches.Add(input.Length + 1);
            if (e.IsAnswer)
            {
                answerDispatch = input.Length + 1;
            }

            input.Append(blank);
            expected.Append(blank);
        }

        return (Encoding.UTF8.GetBytes(input.ToString()), Encoding.UTF8.GetBytes(expected.ToString()), dispatches, answerDispatch);
    }

    private static (ChargedAnswerBody Body, Sink Sink, HttpResponse Response) Create(string contentType)
    {
        var context = new DefaultHttpContext();
        context.Response.StatusCode = StatusCodes.Status200OK;
        context.Response.ContentType = contentType;
        var feature = new McpGuardFeature(RequestId, new McpGuardState(new McpGuardOptions()));
        feature.RecordEnvelope(new McpEnvelope { Kind = McpMessageKind.Request, Id = new JsonRpcId(1), Method = McpMethods.ToolsCall, Name = "add" });
        feature.RecordCharge(new ChargeTicket(context.Response, 800, "800", free: false, balanceAfterMicro: 999_200));
        var sink = new Sink();

        // A flat price: settling it needs no ledger (only a metered capture does).
        return (new ChargedAnswerBody(sink, context.Response, feature, credits: null!), sink, context.Response);
    }

    /// <summary>The response body the charged body writes to: the bytes it received, and how often it was flushed.</summary>
    private sealed class Sink : IHttpResponseBodyFeature
    {
        private readonly MemoryStream _bytes = new();
        private readonly CountingStream _stream;

        public Sink() => _stream = new CountingStream(this);

        public byte[] Written => _bytes.ToArray();

        public int Flushes { get; private set; }

        public Stream Stream => _stream;

        public PipeWriter Writer => throw new NotSupportedException();

        public void DisableBuffering()
        {
        }

        public Task StartAsync(CancellationToken cancellationToken = default) => Task.CompletedTask;

        public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) => throw new NotSupportedException();

        public Task CompleteAsync() => Task.CompletedTask;

        private sealed class CountingStream(Sink owner) : Stream
        {
            public override bool CanRead => false;

            public override bool CanSeek => false;

            public override bool CanWrite => true;

            public override long Length => throw new NotSupportedException();

            public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

            public override void Flush() => owner.Flushes++;

            public override Task FlushAsync(CancellationToken cancellationToken)
            {
                owner.Flushes++;
                return Task.CompletedTask;
            }

            public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

            public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

            public override void SetLength(long value) => throw new NotSupportedException();

            public override void Write(byte[] buffer, int offset, int count) => owner._bytes.Write(buffer, offset, count);

            public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
            {
                owner._bytes.Write(buffer.Span);
                return ValueTask.CompletedTask;
            }
        }
    }
}
