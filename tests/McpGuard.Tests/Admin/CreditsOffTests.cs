using System.Net;
using McpGuard.Tests.Infrastructure;
using McpGuard.Tests.Integration;
using static McpGuard.Tests.Admin.AdminTestKit;

namespace McpGuard.Tests.Admin;

/// <summary>
/// Keys, suspensions and tool statuses have stores of their own: with credits off, the admin API still creates and
/// revokes keys, suspends and reactivates accounts and pauses tools, and the guard acts on every change.
/// </summary>
public sealed class CreditsOffTests
{
    [Fact]
    public async Task Keys_suspensions_and_tool_statuses_work_with_credits_off()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Credits:Enabled"] = "false" });

        // A key created at run time works.
        using var created = await host.PostAdminAsync("/admin/keys", """{"account":"dave","scopes":["tools:basic"],"id":"dave-1"}""", DemoAdminKey);
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        var daveKey = (await JsonAsync(created))["key"]!.GetValue<string>();
        using (var call = await host.PostMcpAsync(Echo("dave"), apiKey: daveKey))
        {
            Assert.Equal("dave", (await Sse.ReadSingleMessageAsync(call)).GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        }

        // A paused tool is refused, and restored.
        using (var paused = await host.PostAdminAsync("/admin/tools/echo/pause", key: DemoAdminKey))
        {
            await AssertJsonAsync(paused, HttpStatusCode.OK, Json("""{"tool":"echo","status":"paused"}"""));
        }

        using (var call = await host.PostMcpAsync(Echo("paused"), apiKey: daveKey))
        {
            await WireAssert.JsonRpcErrorAsync(call, HttpStatusCode.ServiceUnavailable, -31401, "Tool paused: 'echo' is paused by its publisher.", "tool_paused", id: 1L,
                extraData: new System.Text.Json.Nodes.JsonObject { ["tool"] = "echo" });
        }

        using (var restored = await host.PostAdminAsync("/admin/tools/echo/restore", key: DemoAdminKey))
        {
            await AssertJsonAsync(restored, HttpStatusCode.OK, Json("""{"tool":"echo","status":"live"}"""));
        }

        // A suspended account is refused, and reactivated.
        using (var suspended = await host.PostAdminAsync("/admin/accounts/dave/suspend", key: DemoAdminKey))
        {
            await AssertJsonAsync(suspended, HttpStatusCode.OK, Json("""{"id":"dave","status":"suspended"}"""));
        }

        using (var call = await host.PostMcpAsync(Echo("suspended"), apiKey: daveKey))
        {
            await WireAssert.JsonRpcErrorAsync(call, HttpStatusCode.Forbidden, -31104, "Account suspended: contact the server's operator.", "suspended", id: 1L);
        }

        using (var reactivated = await host.PostAdminAsync("/admin/accounts/dave/reactivate", key: DemoAdminKey))
        {
            await AssertJsonAsync(reactivated, HttpStatusCode.OK, Json("""{"id":"dave","status":"active"}"""));
        }

        // A revoked key is refused.
        using (var revoked = await host.PostAdminAsync("/admin/keys/dave-1/revoke", key: DemoAdminKey))
        {
            Assert.Equal(HttpStatusCode.OK, revoked.StatusCode);
        }

        using (var call = await host.PostMcpAsync(Echo("revoked"), apiKey: daveKey))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, call.StatusCode);
        }
    }

    private static string Echo(string message) =>
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"" + message + "\"}}}";

    private static async Task<System.Text.Json.Nodes.JsonNode> JsonAsync(HttpResponseMessage response) =>
        System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!;

    private static System.Text.Json.Nodes.JsonNode Json(string text) => System.Text.Json.Nodes.JsonNode.Parse(text)!;
}
