using System.Text;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace McpGuard.Tests.Protocol;

/// <summary>
/// A body whose HTTP framing is broken is the client's error, never the server's: over a real socket, a bad chunk is
/// 400 <c>invalid_request</c>, a body that stalls is 408 <c>request_timeout</c>, and a client that leaves mid-body is
/// logged as a disconnect. None of them reaches the endpoint, moves money or logs at Error.
/// </summary>
public sealed class FramingErrorTests : IAsyncLifetime
{
    /// <summary>A priced call (add costs 800): had it reached the credit gate, alice's ledger would show it.</summary>
    private const string AddCall = """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}""";

    private const string BrokenFraming = "Invalid Request: the request body could not be read; its chunked encoding or Content-Length is broken.";

    private CountingHost _counting = null!;
    private string _ledgerBefore = null!;

    private GuardedHost Host => _counting.Host;

    public async Task InitializeAsync()
    {
        _counting = await CountingHost.StartWithQuickBodyTimeoutAsync();
        _ledgerBefore = await _counting.LedgerAsync("alice");
    }

    public async Task DisposeAsync() => await _counting.DisposeAsync();

    public static TheoryData<string, string> BadChunks() => new()
    {
        { "a chunk size that is not hex", "zz\r\n" + AddCall + "\r\n0\r\n\r\n" },
        { "a bad chunk size after a good chunk", "10\r\n" + AddCall[..16] + "\r\n-4\r\n" + AddCall[16..] + "\r\n0\r\n\r\n" },
        { "chunk data longer than its size", "5\r\n" + AddCall + "\r\n0\r\n\r\n" },
        { "a chunk size too large to be a number", "fffffffffffffffff\r\n" + AddCall + "\r\n0\r\n\r\n" },
    };

    [Theory]
    [MemberData(nameof(BadChunks))]
    public async Task A_body_with_broken_chunks_is_400_invalid_request_logged_at_information(string why, string chunkedBody)
    {
        var requestId = $"chunks-{Guid.NewGuid():N}";

        var response = await RawHttp.SendAsync(Host.BaseAddress, McpRequest(requestId, ("Transfer-Encoding", "chunked"), Encoding.ASCII.GetBytes(chunkedBody)));

        Assert.False(string.IsNullOrEmpty(why));
        AssertJsonRpcError(response, "HTTP/1.1 400 Bad Request", requestId,
            $$$$"""{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"{{{{BrokenFraming}}}}","data":{"reason":"invalid_request","request_id":"{{{{requestId}}}}"}}}""");
        var logged = Assert.Single(GuardLogs(requestId));
        Assert.Equal((2001, LogLevel.Information), (logged.EventId.Id, logged.Level));
        Assert.Equal($"McpGuard refused request {requestId}: invalid_request (400).", logged.Message);
        await AssertNothingHappenedAsync();
    }

    [Fact]
    public async Task A_body_that_arrives_too_slowly_is_408_request_timeout()
    {
        var requestId = $"slow-{Guid.NewGuid():N}";
        var body = Encoding.UTF8.GetBytes(AddCall);

        // The headers promise the whole body, the client sends ten bytes and then nothing.
        var response = await RawHttp.SendAsync(
            Host.BaseAddress, McpRequest(requestId, ("Content-Length", body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)), body[..10]),
            RawEnding.StayOpen, TimeSpan.FromSeconds(15));

        AssertJsonRpcError(response, "HTTP/1.1 408 Request Timeout", requestId,
            $$$$"""{"jsonrpc":"2.0","id":null,"error":{"code":-31202,"message":"Request Timeout: the request body arrived too slowly.","data":{"reason":"request_timeout","request_id":"{{{{requestId}}}}"}}}""");
        var logged = Assert.Single(GuardLogs(requestId));
        Assert.Equal((2001, LogLevel.Information), (logged.EventId.Id, logged.Level));
        Assert.Equal($"McpGuard refused request {requestId}: request_timeout (408).", logged.Message);
        await AssertNothingHappenedAsync();
    }

    [Fact]
    public async Task A_body_cut_short_of_its_content_length_is_answered_as_400_invalid_request_though_the_client_cannot_hear_it()
    {
        var requestId = $"short-{Guid.NewGuid():N}";
        var body = Encoding.UTF8.GetBytes(AddCall);

        // The client sends fewer bytes than Content-Length and closes its side. Kestrel refuses the body (400) and aborts
        // the connection, since it does not keep half-closed HTTP/1.1 connections, so the answer never reaches the client.
        var response = await RawHttp.SendAsync(
            Host.BaseAddress, McpRequest(requestId, ("Content-Length", (body.Length + 50).ToString(System.Globalization.CultureInfo.InvariantCulture)), body), RawEnding.HalfClose);

        Assert.Null(response);
        var logged = await Host.Logs.WaitForAsync(2001, TimeSpan.FromSeconds(10), requestId);
        Assert.Equal(LogLevel.Information, logged.Level);
        Assert.Equal($"McpGuard refused request {requestId}: invalid_request (400).", logged.Message);
        Assert.Equal([logged], GuardLogs(requestId));
        await AssertNothingHappenedAsync();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_client_that_resets_the_connection_mid_body_is_logged_as_a_disconnect_at_debug(bool chunked)
    {
        var requestId = $"reset-{Guid.NewGuid():N}";
        var body = Encoding.UTF8.GetBytes(AddCall);
        var stopped = _counting.ConnectionsStopped;

        await using (var connection = await RawHttp.RawConnection.OpenAsync(Host.BaseAddress))
        {
            await connection.SendAsync(chunked
                ? McpRequest(requestId, ("Transfer-Encoding", "chunked"), Encoding.ASCII.GetBytes($"{body.Length:x}\r\n{AddCall[..20]}"))
                : McpRequest(requestId, ("Content-Length", body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)), body[..20]));

            // Once the guard is waiting for the rest of the body, the client goes away.
            await Host.Logs.WaitForAsync(25, TimeSpan.FromSeconds(10), requestId);
            connection.Reset();
        }

        await AssertLoggedAsDisconnectAsync(requestId);
        // Kestrel logs its own trouble with the connection (if any) before it reports the connection stopped.
        await RawHttp.WaitUntilAsync(() => _counting.ConnectionsStopped > stopped, TimeSpan.FromSeconds(10), "Kestrel reports the connection stopped");
        await AssertNothingHappenedAsync();
    }

    private async Task AssertLoggedAsDisconnectAsync(string requestId)
    {
        var logged = await Host.Logs.WaitForAsync(2003, TimeSpan.FromSeconds(10), requestId);
        Assert.Equal(LogLevel.Debug, logged.Level);
        Assert.Equal($"The client disconnected during request {requestId}.", logged.Message);
        Assert.Equal([logged], GuardLogs(requestId));
    }

    /// <summary>No request reached the endpoint, alice's ledger is as it was, and nothing anywhere logged at Error or above.</summary>
    private async Task AssertNothingHappenedAsync()
    {
        Assert.Equal(0, _counting.Reached);
        Assert.Equal(_ledgerBefore, await _counting.LedgerAsync("alice"));
        Assert.Empty(Host.Logs.Entries.Where(e => e.Level >= LogLevel.Error).Select(e => $"{e.Category}[{e.EventId.Id}] {e.Level}: {e.FullText}"));
    }

    private IEnumerable<LogEntry> GuardLogs(string requestId) =>
        Host.Logs.Entries.Where(e => e.Category.StartsWith("McpGuard", StringComparison.Ordinal) && e.Message.Contains(requestId, StringComparison.Ordinal));

    private byte[] McpRequest(string requestId, (string Name, string Value) framing, byte[] body) => RawHttp.Request(
        "POST",
        "/mcp",
        [
            new("Host", Host.BaseAddress.Authority),
            new("Content-Type", "application/json"),
            new("Accept", "application/json, text/event-stream"),
            new("Authorization", $"Bearer {DemoKeys.Alice}"),
            new("X-Request-Id", requestId),
            new(framing.Name, framing.Value),
        ],
        body);

    /// <summary>The exact answer: status line, every header (Date only checked for presence) and the JSON body.</summary>
    private static void AssertJsonRpcError(RawResponse? response, string statusLine, string requestId, string body)
    {
        Assert.NotNull(response);
        Assert.Equal(statusLine, response.StatusLine);
        Assert.Equal(["cache-control", "content-type", "date", "server", "transfer-encoding", "x-request-id"], response.HeaderNames);
        Assert.Equal("no-store", response.Header("Cache-Control"));
        Assert.Equal("application/json; charset=utf-8", response.Header("Content-Type"));
        Assert.Equal("Kestrel", response.Header("Server"));
        Assert.Equal("chunked", response.Header("Transfer-Encoding"));
        Assert.Equal(requestId, response.Header("X-Request-Id"));
        Assert.Equal(body, response.BodyText);
    }
}
