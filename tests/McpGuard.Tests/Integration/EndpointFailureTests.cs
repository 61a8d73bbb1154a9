using System.Net;
using System.Net.Http.Headers;
using System.Text;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace McpGuard.Tests.Integration;

/// <summary>What a client sees, and what is logged, when the endpoint behind the guard fails or the client goes away.</summary>
public sealed class EndpointFailureTests
{
    private const string Secret = "Server=db;Password=hunter2";
    private const string Request = """{"jsonrpc":"2.0","id":12,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}""";
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task An_endpoint_that_throws_gives_a_500_internal_error_without_the_exception()
    {
        await using var host = await StartAsync(_ => throw new InvalidOperationException($"connection string {Secret} is broken"));

        using var response = await host.PostMcpAsync(Request);

        var requestId = await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.InternalServerError, -32603, "Internal error", "internal_error", id: 12L);
        WireAssert.IsGeneratedRequestId(requestId);
        var body = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("hunter2", body, StringComparison.Ordinal);
        Assert.DoesNotContain(nameof(InvalidOperationException), body, StringComparison.Ordinal);
        Assert.DoesNotContain(" at ", body, StringComparison.Ordinal);
        AssertLoggedOnce<InvalidOperationException>(host, requestId);
    }

    [Fact]
    public async Task An_endpoint_that_fails_asynchronously_is_translated_the_same_way_and_its_headers_are_dropped()
    {
        await using var host = await StartAsync(async context =>
        {
            context.Response.Headers["X-Debug-Connection"] = Secret;
            context.Response.Headers.CacheControl = "public, max-age=60";
            await Task.Yield();
            throw new InvalidDataException($"bad row: {Secret}");
        });

        using var response = await host.PostMcpAsync(Request, headers: new Dictionary<string, string> { ["X-Request-Id"] = "client-500" });

        var requestId = await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.InternalServerError, -32603, "Internal error", "internal_error", id: 12L);
        Assert.Equal("client-500", requestId);
        Assert.False(response.Headers.Contains("X-Debug-Connection"));
        AssertLoggedOnce<InvalidDataException>(host, requestId);
    }

    [Fact]
    public async Task An_operation_canceled_exception_that_is_not_a_disconnect_is_an_internal_error()
    {
        await using var host = await StartAsync(_ => throw new OperationCanceledException("the endpoint's own timeout"));

        using var response = await host.PostMcpAsync(Request);

        var requestId = await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.InternalServerError, -32603, "Internal error", "internal_error", id: 12L);
        AssertLoggedOnce<OperationCanceledException>(host, requestId);
    }

    [Fact]
    public async Task An_endpoint_failure_renders_as_problem_details_when_configured()
    {
        await using var host = await StartAsync(_ => throw new InvalidOperationException(Secret), new Dictionary<string, string?> { ["McpGuard:Errors:Format"] = "ProblemDetails" });

        using var response = await host.PostMcpAsync(Request);

        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.ToString());
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        var requestId = WireAssert.RequestId(response);
        var problem = System.Text.Json.Nodes.JsonNode.Parse(body)!.AsObject();
        problem.Remove("traceId");
        WireAssert.JsonEquals($$"""
            {
              "type": "https://tools.ietf.org/html/rfc9110#section-15.6.1",
              "title": "Internal error",
              "status": 500,
              "detail": "Report the request id to the server's operator; do not retry in a loop.",
              "error_code": "internal_error",
              "request_id": "{{requestId}}",
              "retryable": false,
              "resolve": { "message": "Report the request id to the server's operator; do not retry in a loop.", "action": "do_not_retry" }
            }
            """, problem.ToJsonString());
        Assert.DoesNotContain("hunter2", body, StringComparison.Ordinal);
        AssertLoggedOnce<InvalidOperationException>(host, requestId);
    }

    [Fact]
    public async Task An_endpoint_that_fails_mid_stream_ends_the_stream_cleanly()
    {
        const string Partial = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\n\n";
        await using var host = await StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(Partial);
            await context.Response.Body.FlushAsync();
            throw new InvalidOperationException($"failed after the first event: {Secret}");
        });
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent(Request, Encoding.UTF8, "application/json") };
        request.Headers.Accept.ParseAdd("application/json, text/event-stream");

        using var response = await host.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        var body = await response.Content.ReadAsStringAsync().WaitAsync(Bound);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.ToString());
        Assert.Equal(Partial, body);
        AssertLoggedOnce<InvalidOperationException>(host, WireAssert.RequestId(response));
    }

    [Fact]
    public async Task A_client_that_disconnects_is_not_logged_as_an_error()
    {
        var entered = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var finished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var host = await StartAsync(
            async context =>
            {
                entered.TrySetResult();
                await Task.Delay(Timeout.Infinite, context.RequestAborted);
            },
            new Dictionary<string, string?> { ["Logging:LogLevel:McpGuard"] = "Debug", ["Logging:LogLevel:Microsoft.AspNetCore"] = "Debug" },
            before: app => app.Use(async (context, next) =>
            {
                try
                {
                    await next(context);
                }
                finally
                {
                    finished.TrySetResult();
                }
            }));
        using var cancel = new CancellationTokenSource();
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent(Request, Encoding.UTF8, "application/json") };
        request.Headers.Accept.ParseAdd("application/json, text/event-stream");
        request.Headers.Add("X-Request-Id", "leaving-1");

        var send = host.Client.SendAsync(request, cancel.Token);
        await entered.Task.WaitAsync(Bound);
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => send);
        await finished.Task.WaitAsync(Bound);
        Assert.DoesNotContain(host.Logs.Entries, e => e.Level >= LogLevel.Warning);
        var entry = Assert.Single(host.Logs.Entries, e => e.Category == "McpGuard.McpGuardPipeline");
        Assert.Equal(2003, entry.EventId.Id);
        Assert.Equal(LogLevel.Debug, entry.Level);
        Assert.Equal("The client disconnected during request leaving-1.", entry.Message);
    }

    private static void AssertLoggedOnce<TException>(GuardedHost host, string requestId)
        where TException : Exception
    {
        var entry = Assert.Single(host.Logs.Entries, e => e.Level >= LogLevel.Error);
        Assert.Equal(2002, entry.EventId.Id);
        Assert.Equal(LogLevel.Error, entry.Level);
        Assert.Equal($"The MCP endpoint failed while serving request {requestId}.", entry.Message);
        Assert.IsType<TException>(entry.Exception);
    }

    private static Task<GuardedHost> StartAsync(RequestDelegate endpoint, IReadOnlyDictionary<string, string?>? configuration = null, Action<WebApplication>? before = null) =>
        GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app =>
            {
                before?.Invoke(app);
                app.UseMcpGuard();
                app.MapPost("/mcp", endpoint);
            },
            configuration);
}
