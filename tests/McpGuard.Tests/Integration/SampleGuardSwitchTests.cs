using System.Net;
using McpGuard.Tests.Infrastructure;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Integration;

/// <summary>
/// The sample's <c>Sample:Guard</c> switch, which benchmarks/compare.sh uses to measure the guard: off, the same MCP
/// server answers with no key, no limit, no price and no admin API; on (the default), a call needs a key.
/// </summary>
public sealed class SampleGuardSwitchTests
{
    [Fact]
    public async Task With_the_guard_off_echo_answers_without_a_key()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["Sample:Guard"] = "false" });

        using var response = await host.PostMcpAsync(Echo("no key needed"), apiKey: null);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        Assert.False(response.Headers.Contains("X-Request-Id"));
        var message = await Sse.ReadSingleMessageAsync(response);
        Assert.Equal(1, message.GetProperty("id").GetInt32());
        Assert.Equal("no key needed", message.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
    }

    [Fact]
    public async Task With_the_guard_off_nothing_is_limited_or_priced_and_there_is_no_admin_api()
    {
        // A key the guard would refuse is ignored, and add answers past the sample's 30-a-minute limit with no price to pay.
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["Sample:Guard"] = "false" });

        for (var i = 1; i <= 31; i++)
        {
            using var response = await host.PostMcpAsync(ToolCall("add", new { a = i, b = 1 }, i), apiKey: DemoKeys.Revoked);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var message = await Sse.ReadSingleMessageAsync(response);
            Assert.Equal((i + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), message.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        }

        using var admin = await host.Client.GetAsync("/admin/accounts/alice");
        Assert.Equal(HttpStatusCode.NotFound, admin.StatusCode);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("true")]
    public async Task With_the_guard_on_echo_needs_a_key(string? guard)
    {
        var configuration = guard is null ? null : new Dictionary<string, string?> { ["Sample:Guard"] = guard };
        await using var host = await GuardedHost.StartSampleAsync(configuration);

        using (var refused = await host.PostMcpAsync(Echo(), apiKey: null))
        {
            await AssertJsonRpcErrorAsync(refused, HttpStatusCode.Unauthorized, EchoChallenge, -31101, InvalidKeyMessage, "unauthorized");
        }

        using var answered = await host.PostMcpAsync(Echo("with a key"));
        Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        Assert.Equal("with a key", (await Sse.ReadSingleMessageAsync(answered)).GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
    }
}
