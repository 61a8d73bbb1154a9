using System.Buffers;
using System.IO.Pipelines;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace McpGuard.Proxy;

/// <summary>
/// The response body of a forwarded POST: when it is an event stream, every <c>id</c> field is taken out as the bytes
/// pass, so that a client cannot resume the stream with <c>Last-Event-ID</c>. Resuming would have the upstream replay the
/// answer to the client after the guard settled the call as unanswered (refunded: a free call), or replay a
/// <c>tools/list</c> answer the proxy filtered, unfiltered. The session's GET stream keeps its ids: resuming it replays
/// only what the server sent of its own accord. Lines stream through as they come; only the first three bytes of a line
/// are held back, until they tell whether it is an <c>id</c> field.
/// </summary>
internal sealed class EventIdStrippingBody(IHttpResponseBodyFeature inner, HttpResponse response) : IHttpResponseBodyFeature
{
    private Stream? _stream;
    private PipeWriter? _writer;
    private bool? _eventStream;

    // Line state, across writes.
    private readonly byte[] _held = new byte[3];
    private int _heldCount;
    private bool _atLineStart = true;
    private bool _dropping;
    private bool _lastWasCarriageReturn;

    public Stream Stream => _stream ??= new WriteOnlyStream(WriteAsync, FlushInnerAsync);

    public PipeWriter Writer => _writer ??= PipeWriter.Create(Stream, new StreamPipeWriterOptions(leaveOpen: true));

    public void DisableBuffering() => inner.DisableBuffering();

    public Task StartAsync(CancellationToken cancellationToken = default) => inner.StartAsync(cancellationToken);

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) =>
        inner.SendFileAsync(path, offset, count, cancellationToken);

    public async Task CompleteAsync()
    {
        if (_writer is not null)
        {
            await _writer.FlushAsync();
        }

        var rest = new byte[_held.Length];
        var count = FilterEnd(rest);
        if (count > 0)
        {
            await inner.Stream.WriteAsync(rest.AsMemory(0, count));
        }

        await inner.CompleteAsync();
    }

    private async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (data.IsEmpty)
        {
            return;
        }

        _eventStream ??= HttpSyntax.IsEventStream(response.ContentType);
        if (_eventStream == false)
        {
            await inner.Stream.WriteAsync(data, cancellationToken);
            return;
        }

        var output = ArrayPool<byte>.Shared.Rent(data.Length + _held.Length);
        try
        {
            var written = Filter(data.Span, output);
            if (written > 0)
            {
                await inner.Stream.WriteAsync(output.AsMemory(0, written), cancellationToken);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(output);
        }
    }

    /// <summary>Copies <paramref name="input"/> to <paramref name="output"/> without its <c>id</c> lines; the count written.</summary>
    internal int Filter(ReadOnlySpan<byte> input, Span<byte> output)
    {
        var n = 0;
        foreach (var b in input)
        {
            if (_lastWasCarriageReturn && b == (byte)'\n')
            {
                // The second half of a CRLF: it goes (or not) with the line it ends.
                _lastWasCarriageReturn = false;
                if (!_dropping)
                {
                    output[n++] = b;
                }

                continue;
            }

            _lastWasCarriageReturn = false;
            if (b is (byte)'\r' or (byte)'\n')
            {
                if (_atLineStart)
                {
                    // The whole line is what is held: an id field when it reads "id" or "id:".
                    _dropping = _heldCount > 0 && IsIdPrefix(_held.AsSpan(0, _heldCount), complete: true);
                    if (!_dropping)
                    {
                        _held.AsSpan(0, _heldCount).CopyTo(output[n..]);
                        n += _heldCount;
                    }
                }

                if (!_dropping)
                {
                    output[n++] = b;
                }

                _lastWasCarriageReturn = b == (byte)'\r';
                _atLineStart = true;
                _heldCount = 0;
                continue;
            }

            if (_atLineStart)
            {
                _dropping = false;
                _held[_heldCount++] = b;
                if (!IsIdPrefix(_held.AsSpan(0, _heldCount), complete: false))
                {
                    _held.AsSpan(0, _heldCount).CopyTo(output[n..]);
                    n += _heldCount;
                    _heldCount = 0;
                    _atLineStart = false;
                }
                else if (_heldCount == 3)
                {
                    // "id:": the rest of the line goes too.
                    _dropping = true;
                    _heldCount = 0;
                    _atLineStart = false;
                }

                continue;
            }

            if (!_dropping)
            {
                output[n++] = b;
            }
        }

        return n;
    }

    /// <summary>
    /// The end of the stream: what is still held of a line's first bytes goes out, unless it reads "id" or "id:". The
    /// count written to <paramref name="output"/> (at most three bytes).
    /// </summary>
    internal int FilterEnd(Span<byte> output)
    {
        var count = _heldCount > 0 && !IsIdPrefix(_held.AsSpan(0, _heldCount), complete: true) ? _heldCount : 0;
        _held.AsSpan(0, count).CopyTo(output);
        _heldCount = 0;
        return count;
    }

    /// <summary>
    /// Whether the bytes can still become an id field ("id:" or, as a whole line, "id"); with <paramref name="complete"/>,
    /// whether they are one.
    /// </summary>
    private static bool IsIdPrefix(ReadOnlySpan<byte> bytes, bool complete) =>
        complete
            ? bytes.SequenceEqual("id"u8) || bytes.SequenceEqual("id:"u8)
            : "id:"u8.StartsWith(bytes);

    private Task FlushInnerAsync(CancellationToken cancellationToken) => inner.Stream.FlushAsync(cancellationToken);
}
