using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;

namespace McpGuard.Credits;

/// <summary>
/// The response body while a charged call runs: a flush before the first byte does not start the response.
/// The MCP SDK's Streamable HTTP transport flushes its SSE headers as soon as a call arrives, long before the
/// tool answers; without this, a call that then times out could only end as an empty <c>200</c> stream (whose
/// headers already announced the charge) instead of <c>504 upstream_timeout</c>. Writes, explicit
/// <c>StartAsync</c> and everything after the first byte pass straight through.
/// </summary>
internal sealed class DeferredStartResponseBody(IHttpResponseBodyFeature inner) : IHttpResponseBodyFeature
{
    private Stream? _stream;
    private PipeWriter? _writer;

    /// <summary>Whether the endpoint has written a byte (after which flushes pass through).</summary>
    public bool Written { get; private set; }

    public Stream Stream => _stream ??= new DeferredStream(this, inner.Stream);

    public PipeWriter Writer => _writer ??= new DeferredPipeWriter(this, inner.Writer);

    public void DisableBuffering() => inner.DisableBuffering();

    public Task StartAsync(CancellationToken cancellationToken = default) => inner.StartAsync(cancellationToken);

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
    {
        Written = true;
        return inner.SendFileAsync(path, offset, count, cancellationToken);
    }

    public Task CompleteAsync() => inner.CompleteAsync();

    private void MarkWritten(int count)
    {
        if (count > 0)
        {
            Written = true;
        }
    }

    private sealed class DeferredStream(DeferredStartResponseBody owner, Stream inner) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override void Flush()
        {
            if (owner.Written)
            {
                inner.Flush();
            }
        }

        public override Task FlushAsync(CancellationToken cancellationToken) =>
            owner.Written ? inner.FlushAsync(cancellationToken) : Task.CompletedTask;

        public override void Write(byte[] buffer, int offset, int count)
        {
            owner.MarkWritten(count);
            inner.Write(buffer, offset, count);
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            owner.MarkWritten(buffer.Length);
            inner.Write(buffer);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            owner.MarkWritten(count);
            return inner.WriteAsync(buffer, offset, count, cancellationToken);
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            owner.MarkWritten(buffer.Length);
            return inner.WriteAsync(buffer, cancellationToken);
        }

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private sealed class DeferredPipeWriter(DeferredStartResponseBody owner, PipeWriter inner) : PipeWriter
    {
        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;

        public override void Advance(int bytes)
        {
            owner.MarkWritten(bytes);
            inner.Advance(bytes);
        }

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) =>
            owner.Written ? inner.FlushAsync(cancellationToken) : new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: false));

        public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default)
        {
            owner.MarkWritten(source.Length);
            return inner.WriteAsync(source, cancellationToken);
        }

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);
    }
}
