using System.Net;
using McpGuard.Tests.Infrastructure;

namespace McpGuard.Tests.Integration;

/// <summary>
/// The three JSON-RPC examples of MailGreet's "error layers" page (reference seed 002), sent to the sample
/// behind the guard. The guard answers the envelope error itself (with HTTP 400, not the page's 200); the
/// unknown method and the unknown tool pass the guard and are answered by the C# SDK server behind it.
/// </summary>
public sealed class MailGreetExampleTests(MailGreetExampleTests.SampleFixture fixture) : IClassFixture<MailGreetExampleTests.SampleFixture>
{
    public sealed class SampleFixture : IAsyncLifetime
    {
        public GuardedHost Host { get; private set; } = null!;

        public async Task InitializeAsync() => Host = await GuardedHost.StartSampleAsync();

        public async Task DisposeAsync() => await Host.DisposeAsync();
    }

    [Fact]
    public async Task Wrong_jsonrpc_version_is_refused_by_the_guard_with_400_and_the_pages_message()
    {
        using var response = await fixture.Host.PostMcpAsync("""{"jsonrpc": "1.0", "id": 1, "method": "ping"}""");

        var requestId = WireAssert.RequestId(response);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        WireAssert.JsonEquals($$"""
            {
              "jsonrpc": "2.0",
              "id": 1,
              "error": {
                "code": -32600,
                "message": "Invalid Request: missing or invalid jsonrpc version",
                "data": { "reason": "invalid_request", "request_id": "{{requestId}}" }
              }
            }
            """, await response.Content.ReadAsStringAsync());
        WireAssert.IsGeneratedRequestId(requestId);
    }

    [Fact]
    public async Task Unknown_method_passes_the_guard_and_gets_method_not_found_from_the_server()
    {
        using var response = await fixture.Host.PostMcpAsync("""{"jsonrpc": "2.0", "id": 1, "method": "some/unknown"}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        WireAssert.IsGeneratedRequestId(WireAssert.RequestId(response));
        WireAssert.JsonEquals("""
            {
              "jsonrpc": "2.0",
              "id": 1,
              "error": { "code": -32601, "message": "Method 'some/unknown' is not available." }
            }
            """, await Sse.ReadSingleMessageAsync(response));
    }

    [Fact]
    public async Task Unknown_tool_passes_the_guard_and_gets_invalid_params_from_the_server()
    {
        using var response = await fixture.Host.PostMcpAsync("""{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "nonexistent_tool", "arguments": {}}}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        WireAssert.IsGeneratedRequestId(WireAssert.RequestId(response));
        WireAssert.JsonEquals("""
            {
              "jsonrpc": "2.0",
              "id": 1,
              "error": { "code": -32602, "message": "Unknown tool: 'nonexistent_tool'" }
            }
            """, await Sse.ReadSingleMessageAsync(response));
    }
}
