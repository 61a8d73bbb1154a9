using System.Net;
using System.Text.Json.Nodes;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.RateLimiting;

/// <summary>
/// The exact 429 a client sees in each rendering (JSON-RPC, RFC 9457 problem details, in-band tool result),
/// always with <c>Retry-After</c> and the <c>RateLimit</c> headers.
/// </summary>
public sealed class RateLimitRenderingTests
{
    private const string Suggestion = "Wait for the number of seconds in Retry-After, then retry.";
    private const string State = "\"add-1m\";r=0;t=30, \"default-1m\";r=90;t=30, \"default-1d\";r=9970;t=50370";

    private static readonly DateTimeOffset HalfPastTen = new(2026, 11, 21, 10, 0, 30, TimeSpan.Zero);

    [Fact]
    public async Task Json_rpc_is_the_default_rendering()
    {
        await using var host = await RateLimitWire.StartSampleAsync(new FakeTimeProvider(HalfPastTen));

        using var response = await RefuseBobsAddAsync(host);

        await RateLimitWire.AssertRateLimitedAsync(response, 31, 30, "add-1m", RateLimitWire.AddPolicy, State);
    }

    [Fact]
    public async Task Problem_details_is_a_429_problem_json_with_retry_after_limit_and_a_back_off_resolve()
    {
        await using var host = await RateLimitWire.StartSampleAsync(new FakeTimeProvider(HalfPastTen), new Dictionary<string, string?>
        {
            ["McpGuard:Errors:Format"] = "ProblemDetails",
        });

        using var response = await RefuseBobsAddAsync(host);

        await AssertProblemAsync(response, "Rate limit exceeded: retry after 30 s.");
    }

    [Fact]
    public async Task A_per_reason_problem_details_format_and_message_apply_to_the_429()
    {
        await using var host = await RateLimitWire.StartSampleAsync(new FakeTimeProvider(HalfPastTen), new Dictionary<string, string?>
        {
            ["McpGuard:Errors:Reasons:rate_limited:Format"] = "ProblemDetails",
            ["McpGuard:Errors:Reasons:rate_limited:Message"] = "Slow down",
        });

        using var response = await RefuseBobsAddAsync(host);

        // The configured message replaces the request-specific one; Retry-After and retry_after still say when.
        await AssertProblemAsync(response, "Slow down");
    }

    [Fact]
    public async Task Tool_result_is_an_in_band_200_that_keeps_retry_after_and_the_rate_limit_headers()
    {
        await using var host = await RateLimitWire.StartSampleAsync(new FakeTimeProvider(HalfPastTen), new Dictionary<string, string?>
        {
            ["McpGuard:Errors:Format"] = "ToolResult",
        });

        using var response = await RefuseBobsAddAsync(host);

        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"Expected 200, got {(int)response.StatusCode}: {body}");
        Assert.Equal(WireAssert.JsonContentType, response.Content.Headers.ContentType?.ToString());
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        Assert.Equal("30", RateLimitWire.Header(response, "Retry-After"));
        RateLimitWire.AssertHeaders(response, RateLimitWire.AddPolicy, State);
        WireAssert.JsonEquals(new JsonObject
        {
            ["jsonrpc"] = "2.0",
            ["id"] = 31,
            ["result"] = new JsonObject
            {
                ["content"] = new JsonArray(new JsonObject
                {
                    ["type"] = "text",
                    ["text"] = "**Error code:** rate_limited\nRate limit exceeded: retry after 30 s.\n" + Suggestion,
                }),
                ["structuredContent"] = new JsonObject
                {
                    ["reason"] = "rate_limited",
                    ["request_id"] = WireAssert.RequestId(response),
                    ["retryable"] = true,
                    ["action"] = "back_off",
                    ["retry_after"] = 30,
                    ["limit"] = "add-1m",
                },
                ["isError"] = true,
            },
        }.ToJsonString(), body);
    }

    [Theory]
    [InlineData("resources/read")]
    [InlineData("prompts/get")]
    public async Task A_counted_method_that_is_not_a_tool_call_falls_back_to_the_json_rpc_429_under_tool_result(string method)
    {
        await using var app = await CountingApp.StartAsync(new FakeTimeProvider(HalfPastTen), new Dictionary<string, string?>
        {
            ["Guard:Errors:Format"] = "ToolResult",
            ["Guard:RateLimits:DefaultPolicy"] = "default",
            ["Guard:RateLimits:Policies:default:Windows:0:Permits"] = "1",
            ["Guard:RateLimits:Policies:default:Windows:0:Window"] = "00:01:00",
        });
        const string Policy = "\"default-1m\";q=1;w=60";
        const string Spent = "\"default-1m\";r=0;t=30";

        using (var first = await app.CallAsync("greeting", 1, method: method))
        {
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            RateLimitWire.AssertHeaders(first, Policy, Spent);
        }

        using var refused = await app.CallAsync("greeting", 2, method: method);
        using var toolCall = await app.CallAsync("echo", 3);

        await RateLimitWire.AssertRateLimitedAsync(refused, 2, 30, "default-1m", Policy, Spent);
        Assert.Equal(HttpStatusCode.OK, toolCall.StatusCode);
        Assert.Equal("30", RateLimitWire.Header(toolCall, "Retry-After"));
        var result = JsonNode.Parse(await toolCall.Content.ReadAsStringAsync())!;
        Assert.Equal(3, result["id"]!.GetValue<int>());
        Assert.True(result["result"]!["isError"]!.GetValue<bool>());
        Assert.Equal(1, app.Calls);
    }

    /// <summary>Bob spends add's 30 a minute; the 31st call (id 31) is refused.</summary>
    private static async Task<HttpResponseMessage> RefuseBobsAddAsync(GuardedHost host)
    {
        await RateLimitWire.SpendAsync(host, DemoKeys.Bob, "add", 30);
        return await RateLimitWire.AddAsync(host, DemoKeys.Bob, 31);
    }

    private static async Task AssertProblemAsync(HttpResponseMessage response, string title)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.TooManyRequests, $"Expected 429, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.ToString());
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        Assert.Equal("30", RateLimitWire.Header(response, "Retry-After"));
        RateLimitWire.AssertHeaders(response, RateLimitWire.AddPolicy, State);

        // ASP.NET Core's problem details defaults add the request's W3C trace id (the hosting Activity's id).
        var actual = JsonNode.Parse(body)!.AsObject();
        Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-9a-f]$", actual["traceId"]?.GetValue<string>());
        actual.Remove("traceId");
        WireAssert.JsonEquals(new JsonObject
        {
            ["title"] = title,
            ["status"] = 429,
            ["detail"] = Suggestion,
            ["error_code"] = "rate_limited",
            ["request_id"] = WireAssert.RequestId(response),
            ["retryable"] = true,
            ["retry_after"] = 30,
            ["limit"] = "add-1m",
            ["resolve"] = new JsonObject { ["message"] = Suggestion, ["action"] = "back_off" },
        }.ToJsonString(), actual.ToJsonString());
    }
}
