using System.IO.Pipelines;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace McpGuard.Proxy;

/// <summary>
/// The response body while a list answer (<c>tools/list</c>, or a priced list: <see cref="ToolListRewriter.Rewrites"/>) comes back: kept in memory (at most <see cref="MaxBytes"/>), so it
/// can be filtered whole before anything reaches the client. The response does not start meanwhile.
/// </summary>
internal sealed class CapturedBody : IHttpResponseBodyFeature, IDisposable
{
    /// <summary>The largest list answer held; a larger one is not passed on (502).</summary>
    internal const int MaxBytes = 16 * 1024 * 1024;

    private readonly BoundedStream _stream = new();
    private PipeWriter? _writer;

    public Stream Stream => _stream;

    public PipeWriter Writer => _writer ??= PipeWriter.Create(_stream, new StreamPipeWriterOptions(leaveOpen: true));

    public ReadOnlyMemory<byte> Bytes => _stream.GetBuffer().AsMemory(0, (int)_stream.Length);

    public void DisableBuffering()
    {
    }

    public Task StartAsync(CancellationToken cancellationToken = default) => FlushWriterAsync(cancellationToken);

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default) =>
        SendFileFallback.SendFileAsync(_stream, path, offset, count, cancellationToken);

    public Task CompleteAsync() => FlushWriterAsync(CancellationToken.None);

    public void Dispose() => _stream.Dispose();

    private async Task FlushWriterAsync(CancellationToken cancellationToken)
    {
        if (_writer is not null)
        {
            await _writer.FlushAsync(cancellationToken);
        }
    }

    private sealed class BoundedStream : MemoryStream
    {
        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Check(buffer.Length);
            base.Write(buffer);
        }

        // MemoryStream's span overload calls this one in a derived type: the check runs, and the bytes are written once.
        public override void Write(byte[] buffer, int offset, int count)
        {
            Check(count);
            base.Write(buffer, offset, count);
        }

        private void Check(int count)
        {
            if (Length + count > MaxBytes)
            {
                throw new InvalidDataException($"The upstream's list answer is larger than {MaxBytes} bytes.");
            }
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            Write(buffer, offset, count);
            return Task.CompletedTask;
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Write(buffer.Span);
            return ValueTask.CompletedTask;
        }
    }
}
