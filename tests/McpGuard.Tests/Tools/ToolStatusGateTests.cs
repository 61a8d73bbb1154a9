using System.Net;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.Tools;

/// <summary>
/// The tool-status gate on its own (<see cref="GuardPipeline"/>, no host): a status in the store overrides the
/// configured one for that tool only, and clearing it brings the configured one back. The wire behaviour (charges,
/// ledger, renderings) stays with CreditGateTests and CreditRenderingTests.
/// </summary>
public sealed class ToolStatusGateTests
{
    public static TheoryData<McpGuardToolStatus?, McpGuardToolStatus?, McpGuardToolStatus> Overrides => new()
    {
        // configured, in the store, what decides
        { null, null, McpGuardToolStatus.Live },
        { McpGuardToolStatus.Paused, null, McpGuardToolStatus.Paused },
        { McpGuardToolStatus.Archived, null, McpGuardToolStatus.Archived },
        { McpGuardToolStatus.Archived, McpGuardToolStatus.Live, McpGuardToolStatus.Live },
        { McpGuardToolStatus.Paused, McpGuardToolStatus.Archived, McpGuardToolStatus.Archived },
        { McpGuardToolStatus.Archived, McpGuardToolStatus.Paused, McpGuardToolStatus.Paused },
        { null, McpGuardToolStatus.Paused, McpGuardToolStatus.Paused },
        { McpGuardToolStatus.Live, McpGuardToolStatus.Archived, McpGuardToolStatus.Archived },
    };

    [Theory]
    [MemberData(nameof(Overrides))]
    public async Task The_stored_status_overrides_the_configured_one_for_that_tool_only(McpGuardToolStatus? configured, McpGuardToolStatus? stored, McpGuardToolStatus decides)
    {
        await using var guard = await GuardPipeline.StartSampleAsync(configured is { } status
            ? new Dictionary<string, string?> { ["McpGuard:Tools:echo:Status"] = status.ToString() }
            : null);
        await guard.Services.GetRequiredService<IMcpGuardToolStatusStore>().SetStatusAsync("echo", stored, default);

        using var echo = await guard.PostMcpAsync(CreditCalls.ToolCall(1, "echo", """{"message":"x"}"""), new Dictionary<string, string> { ["X-Request-Id"] = "status-echo" });
        using var add = await guard.PostMcpAsync(CreditCalls.Add(2));

        await AssertDecidedAsync(echo, decides);
        Assert.Equal(HttpStatusCode.OK, add.StatusCode);
        Assert.Equal(decides == McpGuardToolStatus.Live ? 2 : 1, guard.Reached);
    }

    [Fact]
    public async Task Clearing_the_stored_status_brings_the_configured_one_back()
    {
        await using var guard = await GuardPipeline.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Tools:echo:Status"] = "Archived" });
        var store = guard.Services.GetRequiredService<IMcpGuardToolStatusStore>();
        var headers = new Dictionary<string, string> { ["X-Request-Id"] = "status-echo" };

        await store.SetStatusAsync("echo", McpGuardToolStatus.Live, default);
        using var live = await guard.PostMcpAsync(CreditCalls.ToolCall(1, "echo", """{"message":"x"}"""), headers);
        await store.SetStatusAsync("echo", null, default);
        using var archived = await guard.PostMcpAsync(CreditCalls.ToolCall(1, "echo", """{"message":"x"}"""), headers);

        await AssertDecidedAsync(live, McpGuardToolStatus.Live);
        await AssertDecidedAsync(archived, McpGuardToolStatus.Archived);
        Assert.Equal(1, guard.Reached);
    }

    private static async Task AssertDecidedAsync(HttpResponseMessage response, McpGuardToolStatus status)
    {
        switch (status)
        {
            case McpGuardToolStatus.Paused:
                await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.ServiceUnavailable, -31401, "Tool paused: 'echo' is paused by its publisher.", "tool_paused", id: 1L,
                    extraData: new() { ["tool"] = "echo" });
                break;
            case McpGuardToolStatus.Archived:
                await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.Gone, -31402, "Tool archived: 'echo' is no longer offered.", "tool_archived", id: 1L,
                    extraData: new() { ["tool"] = "echo" });
                break;
            default:
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal("""{"reached":true}""", await response.Content.ReadAsStringAsync());
                break;
        }
    }
}
