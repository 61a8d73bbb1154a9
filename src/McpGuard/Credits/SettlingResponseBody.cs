using System.Buffers;
using System.IO.Pipelines;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace McpGuard.Credits;

/// <summary>
/// The response body while a charged call runs. Every byte the endpoint writes is read by a
/// <see cref="ResponseAnswerReader"/>, which finds the JSON-RPC answer to the charged request. The response does not
/// start (no status line, no headers) until the first whole JSON-RPC message has been written, or 64 KiB, or the
/// endpoint is done: when that first message is the answer, the call is settled before the headers go out, so a call
/// that is refunded never announces a charge. Flushes before that are held too: the MCP SDK flushes its SSE headers
/// as soon as a call arrives, and a call that then times out must still be able to answer <c>504</c>.
/// </summary>
internal sealed class SettlingResponseBody : IHttpResponseBodyFeature
{
    /// <summary>The most the body holds back while waiting for its first whole message.</summary>
    internal const int MaxHeldBytes = 64 * 1024;

    private readonly IHttpResponseBodyFeature _inner;
    private readonly HttpResponse _response;
    private readonly Func<ValueTask> _beforeRelease;
    private ArrayBufferWriter<byte>? _held;
    private bool _holding = true;
    private bool _startRequested;
    private bool _sawFirstByte;
    private Stream? _stream;
    private PipeWriter? _writer;

    /// <param name="inner">The server's response body.</param>
    /// <param name="response">The response (for its content type when the first byte is written).</param>
    /// <param name="answer">Reads the answer out of the bytes written.</param>
    /// <param name="beforeRelease">Runs once, just before the held bytes (and so the headers) go out.</param>
    public SettlingResponseBody(IHttpResponseBodyFeature inner, HttpResponse response, ResponseAnswerReader answer, Func<ValueTask> beforeRelease)
    {
        _inner = inner;
        _response = response;
        Answer = answer;
        _beforeRelease = beforeRelease;
    }

    public ResponseAnswerReader Answer { get; }

    /// <summary>Whether the body has started passing bytes to the server (after which the status and headers are fixed).</summary>
    public bool Released => !_holding;

    public Stream Stream => _stream ??= new WriteOnlyStream(WriteAsync, FlushAsync);

    public PipeWriter Writer => _writer ??= new SettlingPipeWriter(this);

    public void DisableBuffering() => _inner.DisableBuffering();

    public Task StartAsync(CancellationToken cancellationToken = default)
    {
        if (_holding)
        {
            _startRequested = true;
            return Task.CompletedTask;
        }

        return _inner.StartAsync(cancellationToken);
    }

    public async Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
    {
        // A file is not a JSON-RPC answer; it goes out as it is.
        Observe(default);
        await ReleaseAsync(cancellationToken);
        await _inner.SendFileAsync(path, offset, count, cancellationToken);
    }

    public async Task CompleteAsync()
    {
        Answer.Complete();
        await ReleaseAsync(CancellationToken.None);
        await _inner.CompleteAsync();
    }

    /// <summary>Sends what is held (after <c>beforeRelease</c>); from then on bytes pass straight through.</summary>
    public async ValueTask ReleaseAsync(CancellationToken cancellationToken)
    {
        if (!_holding)
        {
            return;
        }

        _holding = false;
        await _beforeRelease();
        var held = _held;
        _held = null;
        if (held is { WrittenCount: > 0 })
        {
            await _inner.Stream.WriteAsync(held.WrittenMemory, cancellationToken);
            await _inner.Stream.FlushAsync(cancellationToken);
        }
        else if (_startRequested)
        {
            await _inner.StartAsync(cancellationToken);
        }
    }

    /// <summary>Drops what is held: the call failed before its first message, and the guard answers instead.</summary>
    public void Discard() => _held = null;

    private void Observe(ReadOnlySpan<byte> bytes)
    {
        if (!_sawFirstByte)
        {
            _sawFirstByte = true;
            Answer.Start(_response.ContentType);
        }

        Answer.Write(bytes);
    }

    private bool ShouldRelease => Answer.FirstMessageComplete || _held is { WrittenCount: >= MaxHeldBytes };

    private async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (data.IsEmpty)
        {
            return;
        }

        Observe(data.Span);
        if (_holding)
        {
            (_held ??= new ArrayBufferWriter<byte>()).Write(data.Span);
            if (ShouldRelease)
            {
                await ReleaseAsync(cancellationToken);
            }

            return;
        }

        await _inner.Stream.WriteAsync(data, cancellationToken);
    }

    private Task FlushAsync(CancellationToken cancellationToken) =>
        _holding ? Task.CompletedTask : _inner.Stream.FlushAsync(cancellationToken);

    /// <summary>
    /// The pipe writer: while holding, the memory it hands out is the held buffer's; afterwards the server's, with each
    /// advanced span read before it is committed.
    /// </summary>
    private sealed class SettlingPipeWriter(SettlingResponseBody owner) : PipeWriter
    {
        private Memory<byte> _lastMemory;
        private bool _lastFromHeld;
        private long _unflushed;

        /// <summary>Counted here, held or not: System.Text.Json's serializer asks for it to decide when to flush.</summary>
        public override bool CanGetUnflushedBytes => true;

        public override long UnflushedBytes => _unflushed;

        public override void Advance(int bytes)
        {
            if (bytes == 0)
            {
                return;
            }

            _unflushed += bytes;
            owner.Observe(_lastMemory.Span[..bytes]);
            if (_lastFromHeld)
            {
                owner._held!.Advance(bytes);
            }
            else
            {
                owner._inner.Writer.Advance(bytes);
            }
        }

        public override Memory<byte> GetMemory(int sizeHint = 0)
        {
            _lastFromHeld = owner._holding;
            _lastMemory = owner._holding ? (owner._held ??= new ArrayBufferWriter<byte>()).GetMemory(sizeHint) : owner._inner.Writer.GetMemory(sizeHint);
            return _lastMemory;
        }

        public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

        public override async ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            _unflushed = 0;
            if (owner._holding)
            {
                if (!owner.ShouldRelease)
                {
                    return new FlushResult(isCanceled: false, isCompleted: false);
                }

                await owner.ReleaseAsync(cancellationToken);
                return new FlushResult(isCanceled: false, isCompleted: false);
            }

            return await owner._inner.Writer.FlushAsync(cancellationToken);
        }

        public override async ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
        {
            _unflushed = 0;
            await owner.WriteAsync(source, cancellationToken);
            return owner._holding ? new FlushResult(isCanceled: false, isCompleted: false) : await owner._inner.Writer.FlushAsync(cancellationToken);
        }

        public override void CancelPendingFlush() => owner._inner.Writer.CancelPendingFlush();

        public override void Complete(Exception? exception = null)
        {
            if (exception is null)
            {
                owner.CompleteAsync().GetAwaiter().GetResult();
            }
            else
            {
                owner._inner.Writer.Complete(exception);
            }
        }

        public override async ValueTask CompleteAsync(Exception? exception = null)
        {
            if (exception is null)
            {
                await owner.CompleteAsync();
            }
            else
            {
                await owner._inner.Writer.CompleteAsync(exception);
            }
        }
    }
}
