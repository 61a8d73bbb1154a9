using System.Net;
using McpGuard.Tests.Infrastructure;

namespace McpGuard.Tests.RateLimiting;

/// <summary>A tool whose own policy is the default policy spends it once per call, and its headers name each window once.</summary>
public sealed class DefaultPolicyAsToolPolicyTests
{
    [Fact]
    public async Task A_tool_naming_the_default_policy_spends_one_permit_per_call()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Tools:echo:RateLimitPolicy"] = "default",
            ["McpGuard:RateLimits:Policies:default:Windows:0:Permits"] = "3",
        });

        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? last = null;
        for (var i = 0; i < 4; i++)
        {
            last?.Dispose();
            last = await host.PostMcpAsync("{\"jsonrpc\":\"2.0\",\"id\":" + i + ",\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"hi\"}}}");
            statuses.Add(last.StatusCode);
        }

        Assert.Equal([HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.OK, HttpStatusCode.TooManyRequests], statuses);
        Assert.Equal("\"default-1m\";q=3;w=60, \"default-1d\";q=10000;w=86400", Assert.Single(last!.Headers.GetValues("RateLimit-Policy")));
        last.Dispose();
    }
}
