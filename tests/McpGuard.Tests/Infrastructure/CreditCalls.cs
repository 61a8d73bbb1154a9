using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.Infrastructure;

/// <summary>Building and sending <c>tools/call</c> requests, and reading the charge headers.</summary>
internal static class CreditCalls
{
    public const string ChargeHeader = "McpGuard-Charge-Micro";
    public const string BalanceHeader = "McpGuard-Balance-Micro";

    public static string ToolCall(long id, string tool, string arguments) =>
        $$$"""{"jsonrpc":"2.0","id":{{{id}}},"method":"tools/call","params":{"name":"{{{tool}}}","arguments":{{{arguments}}}}}""";

    public static string Add(long id) => ToolCall(id, "add", """{"a":2,"b":3}""");

    public static Task<HttpResponseMessage> CallAsync(GuardedHost host, string body, string? requestId = null, string apiKey = DemoKeys.Alice) =>
        host.PostMcpAsync(body, headers: requestId is null ? null : new Dictionary<string, string> { ["X-Request-Id"] = requestId }, apiKey: apiKey);

    /// <summary>Sends a request to <paramref name="client"/> as a Streamable HTTP client would.</summary>
    public static HttpRequestMessage Post(string body, string apiKey, string? requestId = null, string path = "/mcp")
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json");
        request.Headers.TryAddWithoutValidation("Accept", "application/json, text/event-stream");
        request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {apiKey}");
        if (requestId is not null)
        {
            request.Headers.TryAddWithoutValidation("X-Request-Id", requestId);
        }

        return request;
    }

    /// <summary>A JSON-RPC result answering the request with id <paramref name="id"/>, as an SSE event.</summary>
    public static string ResultEvent(long id, string result = "{}") =>
        $$$"""event: message{{{"\n"}}}data: {"jsonrpc":"2.0","id":{{{id}}},"result":{{{result}}}}{{{"\n\n"}}}""";

    /// <summary>
    /// An endpoint that serves every request: it answers with an empty JSON-RPC result for the request's own id, as
    /// <c>application/json</c> (what a server that ran the call writes).
    /// </summary>
    public static async Task AnswerWithResult(HttpContext context)
    {
        using var request = await JsonDocument.ParseAsync(context.Request.Body);
        context.Response.ContentType = "application/json";
        var id = request.RootElement.GetProperty("id").GetRawText();
        await context.Response.WriteAsync("{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"result\":{}}");
    }

    /// <summary>The single value of a response header, or null when the response has none.</summary>
    public static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? Assert.Single(values) : null;

    /// <summary>The ledger file of a host started by <see cref="GuardedHost"/>.</summary>
    public static string LedgerPath(GuardedHost host) =>
        host.Services.GetRequiredService<IConfiguration>()["McpGuard:SqlitePath"]
        ?? throw new InvalidOperationException("The host has no McpGuard:SqlitePath.");

    /// <summary>Asserts a successful <c>add</c> answer: HTTP 200 and the result 5.</summary>
    public static async Task AssertAddedAsync(HttpResponseMessage response, long id)
    {
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.OK, $"Expected 200, got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        var message = await Sse.ReadSingleMessageAsync(response);
        Assert.Equal(id, message.GetProperty("id").GetInt64());
        var result = message.GetProperty("result");
        Assert.False(result.TryGetProperty("isError", out var isError) && isError.GetBoolean(), message.GetRawText());
        Assert.Equal("5", Assert.Single(result.GetProperty("content").EnumerateArray().ToList()).GetProperty("text").GetString());
    }
}
