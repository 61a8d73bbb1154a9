using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace McpGuard.Tests.Infrastructure;

/// <summary>How the client ends its side after sending the request bytes.</summary>
public enum RawEnding
{
    /// <summary>Keep sending open and wait for the answer (or for the server to time the body out).</summary>
    StayOpen,

    /// <summary>Close the sending side (TCP FIN): the request ends where the bytes end.</summary>
    HalfClose,

    /// <summary>Reset the connection (TCP RST) right after sending: the client is gone.</summary>
    Reset,
}

/// <summary>What came back on the socket: nothing at all, or one HTTP/1.1 response (interim 1xx responses skipped).</summary>
public sealed record RawResponse(string StatusLine, IReadOnlyList<KeyValuePair<string, string>> Headers, byte[] Body)
{
    public int Status => int.Parse(StatusLine.Split(' ')[1], CultureInfo.InvariantCulture);

    public string BodyText => Encoding.UTF8.GetString(Body);

    /// <summary>The values of a header, in order (names compared ignoring case).</summary>
    public IReadOnlyList<string> Values(string name) =>
        [.. Headers.Where(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Select(h => h.Value)];

    /// <summary>The single value of a header, or null when it is absent.</summary>
    public string? Header(string name) => Values(name) switch
    {
        [] => null,
        [var one] => one,
        var many => throw new InvalidOperationException($"{many.Count} '{name}' headers: {string.Join(" | ", many)}"),
    };

    /// <summary>The header names, lower case, sorted: to assert a response carries exactly the expected headers.</summary>
    public IReadOnlyList<string> HeaderNames => [.. Headers.Select(h => h.Key.ToLowerInvariant()).Order(StringComparer.Ordinal)];
}

/// <summary>
/// Speaks HTTP/1.1 over a bare socket, so a test can send what no HTTP client library would: broken chunks, a body
/// shorter than its <c>Content-Length</c>, a body that stalls, odd or repeated framing headers. Every wait is bounded.
/// </summary>
public static class RawHttp
{
    private static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(15);

    /// <summary>Builds a request: the request line, each header as given (one line each), a blank line, then <paramref name="body"/> verbatim.</summary>
    public static byte[] Request(string method, string target, IEnumerable<KeyValuePair<string, string>> headers, ReadOnlySpan<byte> body = default)
    {
        var head = new StringBuilder();
        head.Append(CultureInfo.InvariantCulture, $"{method} {target} HTTP/1.1\r\n");
        foreach (var (name, value) in headers)
        {
            head.Append(CultureInfo.InvariantCulture, $"{name}: {value}\r\n");
        }

        head.Append("\r\n");
        return [.. Encoding.Latin1.GetBytes(head.ToString()), .. body];
    }

    /// <summary>
    /// Opens a connection to <paramref name="server"/>, sends <paramref name="request"/>, ends the sending side as
    /// <paramref name="ending"/> says and reads one response. Null when the server closed (or reset) the connection
    /// without answering; after <see cref="RawEnding.Reset"/> nothing is read and the result is always null.
    /// </summary>
    public static async Task<RawResponse?> SendAsync(Uri server, byte[] request, RawEnding ending = RawEnding.StayOpen, TimeSpan? timeout = null)
    {
        await using var connection = await RawConnection.OpenAsync(server, timeout);
        await connection.SendAsync(request);
        switch (ending)
        {
            case RawEnding.HalfClose:
                connection.HalfClose();
                break;
            case RawEnding.Reset:
                connection.Reset();
                return null;
        }

        return await connection.ReadResponseAsync();
    }

    /// <summary>One client connection, for a test that must act between sending and ending (say, reset once the server reads).</summary>
    public sealed class RawConnection : IAsyncDisposable
    {
        private readonly Socket _socket;
        private readonly CancellationTokenSource _deadline;
        private readonly TimeSpan _timeout;
        private SocketReader? _reader;

        private RawConnection(Socket socket, TimeSpan timeout)
        {
            _socket = socket;
            _timeout = timeout;
            _deadline = new CancellationTokenSource(timeout);
        }

        public static async Task<RawConnection> OpenAsync(Uri server, TimeSpan? timeout = null)
        {
            var connection = new RawConnection(new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true }, timeout ?? DefaultTimeout);
            await connection._socket.ConnectAsync(new IPEndPoint(IPAddress.Parse(server.Host), server.Port), connection._deadline.Token);
            return connection;
        }

        public async Task SendAsync(byte[] bytes) => await _socket.SendAsync(bytes, SocketFlags.None, _deadline.Token);

        /// <summary>Closes the sending side (TCP FIN).</summary>
        public void HalfClose() => _socket.Shutdown(SocketShutdown.Send);

        /// <summary>Resets the connection (TCP RST).</summary>
        public void Reset()
        {
            _socket.LingerState = new LingerOption(true, 0);
            _socket.Close();
        }

        /// <summary>One response, or null when the server closed (or reset) the connection without answering.</summary>
        public async Task<RawResponse?> ReadResponseAsync()
        {
            try
            {
                // One reader for the connection's life: it may have read ahead into the next response.
                _reader ??= new SocketReader(_socket);
                return await RawHttp.ReadResponseAsync(_reader, _deadline.Token);
            }
            catch (OperationCanceledException) when (_deadline.IsCancellationRequested)
            {
                throw new TimeoutException($"No complete response within {_timeout.TotalSeconds} s.");
            }
        }

        public ValueTask DisposeAsync()
        {
            _socket.Dispose();
            _deadline.Dispose();
            return ValueTask.CompletedTask;
        }
    }

    private static async Task<RawResponse?> ReadResponseAsync(SocketReader reader, CancellationToken cancellationToken)
    {
        while (true)
        {
            var statusLine = await reader.ReadLineAsync(cancellationToken);
            if (statusLine is null)
            {
                return null;
            }

            var headers = new List<KeyValuePair<string, string>>();
            while (await reader.ReadLineAsync(cancellationToken) is { Length: > 0 } line)
            {
                var colon = line.IndexOf(':', StringComparison.Ordinal);
                headers.Add(new(line[..colon], line[(colon + 1)..].Trim()));
            }

            var status = int.Parse(statusLine.Split(' ')[1], CultureInfo.InvariantCulture);
            if (status is >= 100 and < 200)
            {
                continue;
            }

            var body = await ReadBodyAsync(reader, headers, status, cancellationToken);
            return new RawResponse(statusLine, headers, body);
        }
    }

    private static async Task<byte[]> ReadBodyAsync(SocketReader reader, List<KeyValuePair<string, string>> headers, int status, CancellationToken cancellationToken)
    {
        string? Find(string name) => headers.FirstOrDefault(h => string.Equals(h.Key, name, StringComparison.OrdinalIgnoreCase)).Value;

        if (status is 204 or 304)
        {
            return [];
        }

        if (Find("Transfer-Encoding") is { } encoding && encoding.EndsWith("chunked", StringComparison.OrdinalIgnoreCase))
        {
            var body = new List<byte>();
            while (true)
            {
                var sizeLine = await reader.ReadLineAsync(cancellationToken) ?? throw new IOException("The server closed the connection inside a chunked body.");
                var size = int.Parse(sizeLine.Split(';')[0].Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                if (size == 0)
                {
                    while (await reader.ReadLineAsync(cancellationToken) is { Length: > 0 })
                    {
                    }

                    return [.. body];
                }

                body.AddRange(await reader.ReadExactlyAsync(size, cancellationToken));
                await reader.ReadLineAsync(cancellationToken);
            }
        }

        if (Find("Content-Length") is { } length)
        {
            return await reader.ReadExactlyAsync(int.Parse(length, CultureInfo.InvariantCulture), cancellationToken);
        }

        return await reader.ReadToEndAsync(cancellationToken);
    }

    /// <summary>Polls <paramref name="condition"/> every 25 ms for at most <paramref name="within"/>, failing the test when it never holds.</summary>
    public static async Task WaitUntilAsync(Func<bool> condition, TimeSpan within, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < within, $"Not within {within.TotalSeconds} s: {what}.");
            await Task.Delay(25);
        }
    }

    /// <summary>Buffered reads from a socket: CRLF lines (Latin-1) and exact byte counts. A reset reads as the end.</summary>
    private sealed class SocketReader(Socket socket)
    {
        private readonly byte[] _buffer = new byte[16 * 1024];
        private int _start;
        private int _end;
        private bool _closed;

        public async Task<string?> ReadLineAsync(CancellationToken cancellationToken)
        {
            var line = new List<byte>();
            while (true)
            {
                if (_start == _end && !await FillAsync(cancellationToken))
                {
                    return line.Count == 0 ? null : Encoding.Latin1.GetString([.. line]);
                }

                var b = _buffer[_start++];
                if (b == '\n')
                {
                    if (line.Count > 0 && line[^1] == '\r')
                    {
                        line.RemoveAt(line.Count - 1);
                    }

                    return Encoding.Latin1.GetString([.. line]);
                }

                line.Add(b);
            }
        }

        public async Task<byte[]> ReadExactlyAsync(int count, CancellationToken cancellationToken)
        {
            var result = new byte[count];
            var filled = 0;
            while (filled < count)
            {
                if (_start == _end && !await FillAsync(cancellationToken))
                {
                    throw new IOException($"The server closed the connection after {filled} of {count} body bytes.");
                }

                var take = Math.Min(count - filled, _end - _start);
                Array.Copy(_buffer, _start, result, filled, take);
                _start += take;
                filled += take;
            }

            return result;
        }

        public async Task<byte[]> ReadToEndAsync(CancellationToken cancellationToken)
        {
            var result = new List<byte>();
            while (_start < _end || await FillAsync(cancellationToken))
            {
                result.AddRange(_buffer.AsSpan(_start, _end - _start).ToArray());
                _start = _end;
            }

            return [.. result];
        }

        private async Task<bool> FillAsync(CancellationToken cancellationToken)
        {
            if (_closed)
            {
                return false;
            }

            int read;
            try
            {
                read = await socket.ReceiveAsync(_buffer, SocketFlags.None, cancellationToken);
            }
            catch (SocketException)
            {
                read = 0;
            }

            _start = 0;
            _end = read;
            _closed = read == 0;
            return read > 0;
        }
    }
}
