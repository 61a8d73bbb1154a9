using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using McpGuard.Credits;
using McpGuard.Protocol;
using McpGuard.Tools;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace McpGuard.Proxy;

/// <summary>
/// The response body of a priced <c>tools/call</c> forwarded to the upstream: the one message answering the call gets the
/// charge it stands on in its <c>result._meta["mcpguard/charge"]</c>, and a metered tool's reported units
/// (<c>result._meta["mcpguard/units"]</c>) are taken out and captured at the tool's rate (<see cref="ChargedResults"/>), as
/// <c>WithMcpGuard()</c> does inside a C# server. Everything else streams through as it comes: in an event stream, only
/// the event that may hold the answer is held, from its first <c>data</c> line until the blank line that ends it (lines
/// before it pass at once, as do whole events that turn out not to be the answer, byte for byte); once the answer went
/// out, every byte passes straight on. An <c>application/json</c> answer is one message: held whole, rewritten, and sent
/// with its new <c>Content-Length</c>. A JSON-RPC <c>error</c>, a <c>result</c> that is not an object, an answer to
/// another id, or one the proxy cannot read passes unchanged (the settlement outside decides by it as ever); so does
/// any answer with a status outside 2xx or another content type. Sits between YARP and <see cref="EventIdStrippingBody"/>.
/// </summary>
internal sealed class ChargedAnswerBody(IHttpResponseBodyFeature inner, HttpResponse response, McpGuardFeature feature, CreditGate credits) : IHttpResponseBodyFeature
{
    /// <summary>The most held at once (a JSON answer, or one event); past it the bytes pass unchanged, without the charge.</summary>
    internal const int MaxBytes = CapturedBody.MaxBytes;

    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    private Stream? _stream;
    private PipeWriter? _writer;
    private Mode _mode;
    private bool _startRequested;
    private bool _finished;

    // What is held (the JSON body, or the event from its first data line), and what goes out at the end of a write.
    private readonly ArrayBufferWriter<byte> _held = new();
    private readonly ArrayBufferWriter<byte> _out = new();

    // Event-stream state, across writes.
    private int _bomMatched;
    private bool _bomChecked;
    private readonly byte[] _prefix = new byte[5];
    private int _prefixCount;
    private long _lineLength;
    private bool _lineDecided;
    private bool _lineHeld;
    private bool _lastLineHeld;
    private bool _lastWasCarriageReturn;
    private bool _holding;
    private bool _passingEvent;

    private enum Mode
    {
        /// <summary>Nothing written yet.</summary>
        Unknown,

        /// <summary>One JSON message, held whole.</summary>
        Json,

        /// <summary>An event stream, read event by event until the answer.</summary>
        EventStream,

        /// <summary>Every byte passes straight on: not an answer to rewrite, or the answer went out already.</summary>
        Through,
    }

    public Stream Stream => _stream ??= new WriteOnlyStream(WriteAsync, FlushAsync);

    public PipeWriter Writer => _writer ??= PipeWriter.Create(Stream, new StreamPipeWriterOptions(leaveOpen: true));

    public void DisableBuffering() => inner.DisableBuffering();

    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (ChooseMode() == Mode.Json && !_finished)
        {
            // The headers wait for the rewritten answer's length.
            _startRequested = true;
            return Task.CompletedTask;
        }

        return inner.StartAsync(cancellationToken);
    }

    public async Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
    {
        // A file is no JSON-RPC message: what is held goes out as it came, and so does the rest.
        if (_writer is not null)
        {
            await _writer.FlushAsync(cancellationToken);
        }

        await PassHeldAsync(cancellationToken);
        await inner.SendFileAsync(path, offset, count, cancellationToken);
    }

    public async Task CompleteAsync()
    {
        await FinishAsync(CancellationToken.None);
        await inner.CompleteAsync();
    }

    /// <summary>
    /// The upstream's answer has ended (YARP copied it all): what is still held goes out, the JSON answer (or an event the
    /// stream never ended, which the settlement also reads as the answer) rewritten when it answers the call.
    /// </summary>
    public async Task FinishAsync(CancellationToken cancellationToken)
    {
        if (_writer is not null)
        {
            await _writer.FlushAsync(cancellationToken);
        }

        if (_finished)
        {
            return;
        }

        _finished = true;
        switch (_mode)
        {
            case Mode.Json:
                await FinishJsonAsync(cancellationToken);
                break;
            case Mode.EventStream:
                if (!_bomChecked && _bomMatched > 0)
                {
                    // The stream ended inside what looked like a byte order mark: those bytes were no mark.
                    _bomChecked = true;
                    Scan(Bom[.._bomMatched], out _);
                }

                if (!_lineDecided && _prefixCount > 0)
                {
                    DecideLine(complete: true);
                }

                if (_holding)
                {
                    await EndEventAsync();
                }

                _mode = Mode.Through;
                await WriteOutAsync(cancellationToken);
                break;
        }

        if (_startRequested && !response.HasStarted)
        {
            await inner.StartAsync(cancellationToken);
        }
    }

    private static ReadOnlySpan<byte> Bom => [0xEF, 0xBB, 0xBF];

    private Mode ChooseMode()
    {
        if (_mode == Mode.Unknown)
        {
            var success = response.StatusCode is >= StatusCodes.Status200OK and < StatusCodes.Status300MultipleChoices;
            _mode = !success || _finished ? Mode.Through
                : HttpSyntax.IsEventStream(response.ContentType) ? Mode.EventStream
                : HttpSyntax.IsJson(response.ContentType) ? Mode.Json
                : Mode.Through;
        }

        return _mode;
    }

    private async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (data.IsEmpty)
        {
            return;
        }

        switch (ChooseMode())
        {
            case Mode.Json:
                _held.Write(data.Span);
                if (_held.WrittenCount > MaxBytes)
                {
                    // Too large to hold: it goes out as it came, without the charge (the settlement still reads it).
                    await PassHeldAsync(cancellationToken);
                }

                return;
            case Mode.EventStream:
                await WriteEventStreamAsync(data, cancellationToken);
                return;
            default:
                await inner.Stream.WriteAsync(data, cancellationToken);
                return;
        }
    }

    // A JSON answer is held whole: a flush would send its headers (and the upstream's length) before it is rewritten.
    private Task FlushAsync(CancellationToken cancellationToken) =>
        ChooseMode() == Mode.Json ? Task.CompletedTask : inner.Stream.FlushAsync(cancellationToken);

    /// <summary>Sends what is held as it came, and lets everything after it through.</summary>
    private async ValueTask PassHeldAsync(CancellationToken cancellationToken)
    {
        if (_mode == Mode.EventStream && !_bomChecked)
        {
            // What looked like the start of a byte order mark.
            _bomChecked = true;
            _out.Write(Bom[.._bomMatched]);
        }

        _mode = Mode.Through;
        _out.Write(_held.WrittenSpan);
        _held.ResetWrittenCount();

        // The first bytes of a line, still held until they told whether it is a data line.
        _out.Write(_prefix.AsSpan(0, _prefixCount));
        _prefixCount = 0;
        await WriteOutAsync(cancellationToken);
    }

    private async ValueTask WriteOutAsync(CancellationToken cancellationToken)
    {
        if (_out.WrittenCount == 0)
        {
            return;
        }

        await inner.Stream.WriteAsync(_out.WrittenMemory, cancellationToken);
        _out.ResetWrittenCount();
    }

    private async ValueTask FinishJsonAsync(CancellationToken cancellationToken)
    {
        _mode = Mode.Through;
        var held = _held.WrittenMemory;
        var rewritten = held.IsEmpty ? null : (await RewriteAsync(held)).Rewritten;
        if (rewritten is not null && response.HasStarted && response.ContentLength is not null)
        {
            // The length went out already (nothing here starts the response: only a flush past the guard could have).
            rewritten = null;
        }

        if (rewritten is not null && !response.HasStarted)
        {
            response.ContentLength = rewritten.Length;
        }

        if (rewritten is not null)
        {
            await inner.Stream.WriteAsync(rewritten, cancellationToken);
        }
        else if (!held.IsEmpty)
        {
            await inner.Stream.WriteAsync(held, cancellationToken);
        }

        _held.ResetWrittenCount();
    }

    private async ValueTask WriteEventStreamAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (!_bomChecked && !data.IsEmpty)
        {
            // A byte order mark before the first line: SSE readers drop it, and so does the proxy (as its list rewriter
            // does), so that the first line reads as a field here and in the settlement alike.
            if (data.Span[0] == Bom[_bomMatched])
            {
                data = data[1..];
                _bomChecked = ++_bomMatched == Bom.Length;
                continue;
            }

            _bomChecked = true;
            Scan(Bom[.._bomMatched], out _);
        }

        while (!data.IsEmpty)
        {
            if (_mode == Mode.Through)
            {
                _out.Write(data.Span);
                break;
            }

            var consumed = Scan(data.Span, out var blankLine);
            data = data[consumed..];
            if (blankLine is { } ending)
            {
                await EndEventAsync();
                _out.Write([ending]);
            }
        }

        await WriteOutAsync(cancellationToken);
    }

    /// <summary>
    /// Reads event-stream bytes: each line's bytes pass (to <see cref="_out"/>) or are held with the event. Stops after
    /// the line ending of a blank line that ends a held event (given in <paramref name="blankLine"/>, not yet written),
    /// so that the event can be judged first. Returns the count of bytes read.
    /// </summary>
    private int Scan(ReadOnlySpan<byte> input, out byte? blankLine)
    {
        blankLine = null;
        var i = 0;
        while (i < input.Length)
        {
            var b = input[i];
            if (_lastWasCarriageReturn)
            {
                _lastWasCarriageReturn = false;
                if (b == (byte)'\n')
                {
                    // The second half of a CRLF: it goes with the line it ends.
                    Route(input.Slice(i, 1), _lastLineHeld);
                    i++;
                    continue;
                }
            }

            if (b is (byte)'\r' or (byte)'\n')
            {
                i++;
                _lastWasCarriageReturn = b == (byte)'\r';
                if (_lineLength == 0)
                {
                    // A blank line: the event ends.
                    _passingEvent = false;
                    _lastLineHeld = false;
                    if (_holding)
                    {
                        blankLine = b;
                        return i;
                    }

                    _out.Write([b]);
                    continue;
                }

                if (!_lineDecided)
                {
                    DecideLine(complete: true);
                }

                Route([b], _lineHeld);
                _lastLineHeld = _lineHeld;
                _lineLength = 0;
                _lineDecided = false;
                _prefixCount = 0;
                continue;
            }

            if (!_lineDecided)
            {
                _lineLength++;
                i++;
                if (_holding || _passingEvent)
                {
                    // A line of an event already held (or already passing): it goes the same way.
                    _lineDecided = true;
                    _lineHeld = _holding;
                    Route([b], _lineHeld);
                    continue;
                }

                _prefix[_prefixCount++] = b;
                if (!"data:"u8.StartsWith(_prefix.AsSpan(0, _prefixCount)) || _prefixCount == _prefix.Length)
                {
                    DecideLine(complete: false);
                }

                continue;
            }

            // The rest of the line, up to its end, goes the way its start went.
            var rest = input[i..];
            var end = rest.IndexOfAny((byte)'\r', (byte)'\n');
            var run = end < 0 ? rest : rest[..end];
            _lineLength += run.Length;
            Route(run, _lineHeld);
            i += run.Length;
        }

        return i;
    }

    /// <summary>
    /// Decides, from the first bytes of a line, whether it is a <c>data</c> line (<c>data:</c>, or <c>data</c> as a whole
    /// line): the event is then held from it on; any other line passes.
    /// </summary>
    private void DecideLine(bool complete)
    {
        var prefix = _prefix.AsSpan(0, _prefixCount);
        var isData = complete ? prefix.SequenceEqual("data"u8) || prefix.SequenceEqual("data:"u8) : prefix.SequenceEqual("data:"u8);
        _lineDecided = true;
        _holding |= isData;
        _lineHeld = isData;
        Route(prefix, _lineHeld);
        _prefixCount = 0;
    }

    private void Route(ReadOnlySpan<byte> bytes, bool held)
    {
        if (!held)
        {
            _out.Write(bytes);
            return;
        }

        _held.Write(bytes);
        if (_held.WrittenCount > MaxBytes)
        {
            // An event too large to hold: it passes as it came, without the charge, to its end.
            _out.Write(_held.WrittenSpan);
            _held.ResetWrittenCount();
            _holding = false;
            _passingEvent = true;
            _lineHeld = false;
            _lastLineHeld = false;
        }
    }

    /// <summary>Judges the held event: the answer goes out rewritten; any other event exactly as it came.</summary>
    private async ValueTask EndEventAsync()
    {
        _holding = false;
        var held = _held.WrittenMemory;
        List<string>? lines = null;
        byte[]? rewritten = null;
        try
        {
            lines = [.. StrictUtf8.GetString(held.Span).Split(["\r\n", "\r", "\n"], StringSplitOptions.RemoveEmptyEntries)];
            if (ToolListRewriter.EventData(lines) is { Length: > 0 } data)
            {
                var (answer, message) = await RewriteAsync(Encoding.UTF8.GetBytes(data));
                rewritten = message;
                if (answer)
                {
                    // The answer went out (rewritten or not): whatever follows passes straight on.
                    _mode = Mode.Through;
                }
            }
        }
        catch (DecoderFallbackException)
        {
            // Not UTF-8: no message a client could read, so not the answer either.
        }

        if (rewritten is null)
        {
            _out.Write(held.Span);
        }
        else
        {
            foreach (var line in lines!.Where(l => !ToolListRewriter.IsData(l)))
            {
                _out.Write(Encoding.UTF8.GetBytes(line + "\n"));
            }

            _out.Write("data: "u8);
            _out.Write(rewritten);
            _out.Write("\n"u8);
        }

        _held.ResetWrittenCount();
    }

    /// <summary>
    /// Whether the message is the answer to this call, and the answer with the charge put in (null when it passes
    /// unchanged: not the answer, an error, a result that is not an object, nothing to add or take out).
    /// </summary>
    private async ValueTask<(bool Answer, byte[]? Rewritten)> RewriteAsync(ReadOnlyMemory<byte> json)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json.Span, documentOptions: ToolListRewriter.ReadOptions);
        }
        catch (JsonException)
        {
            return (false, null);
        }

        if (node is not JsonObject message || !ToolListRewriter.IsAnswer(message, feature))
        {
            return (false, null);
        }

        if (message.ContainsKey("error") || message["result"] is not JsonObject result)
        {
            return (true, null);
        }

        JsonObject? meta = null;
        if (result.TryGetPropertyValue("_meta", out var metaNode) && metaNode is not null)
        {
            if (metaNode is not JsonObject metaObject)
            {
                // Not a _meta any client reads: left as it is (a metered call is then captured at its maximum).
                return (true, null);
            }

            meta = metaObject;
        }

        // Units or a charge of the upstream's own are taken out: then the answer changes even when no charge goes in.
        var takesOut = meta is not null && (meta.ContainsKey(ChargedResults.UnitsMeta) || meta.ContainsKey(ChargedResults.ChargeMeta));
        var settled = await ChargedResults.SettleAsync(feature, credits, meta, Refunded(result));
        if (!takesOut && settled?.ContainsKey(ChargedResults.ChargeMeta) != true)
        {
            return (true, null);
        }

        if (settled is null)
        {
            result.Remove("_meta");
        }
        else if (!ReferenceEquals(settled, meta))
        {
            result["_meta"] = settled;
        }

        return (true, JsonSerializer.SerializeToUtf8Bytes(message, McpGuardJsonNode.Default.JsonNode));
    }

    /// <summary>
    /// Whether the settlement gives this answer's charge back, as it reads the answer: a result that asks for more input
    /// (<c>resultType</c> other than <c>complete</c>), or a tool <c>internal_error</c> with <c>RefundToolInternalErrors</c> on.
    /// </summary>
    private bool Refunded(JsonObject result)
    {
        if (result["resultType"] is JsonValue resultType && resultType.TryGetValue<string>(out var type) && type != "complete")
        {
            return true;
        }

        return feature.State.Credits.RefundToolInternalErrors
            && result["isError"] is JsonValue isError && isError.TryGetValue<bool>(out var error) && error
            && ChargedResults.IsInternalError(result["structuredContent"]);
    }
}
