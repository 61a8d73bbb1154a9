using System.ComponentModel;
using System.Net;
using System.Text.Json;
using McpGuard.Credits;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Tests.Credits;

/// <summary>
/// Money over multiple round trips (2026-07-28, SEP-2322) on the SDK's own <c>MapMcp()</c> behind
/// <c>WithMcpGuard()</c>: a priced call the server answers with an input-required result was not served and is not
/// charged; the retry that carries the client's input and completes is charged once. A URL-elicitation-required error
/// is refunded like any JSON-RPC error. The SDK's signals reach it unchanged, so what the client sees is what the bare
/// server sends.
/// </summary>
public sealed class MultiRoundTripTests
{
    private const string V2026 = "2026-07-28";
    private const long Price = 900;
    private const long Balance = 10_000;

    [Fact]
    public async Task An_input_required_answer_is_not_charged_and_the_completed_retry_is_charged_once()
    {
        await using var host = await StartAsync();

        using var first = await CallAsync(host, 1, "confirm_order", extraParams: "");
        Assert.Equal(HttpStatusCode.OK, first.StatusCode);
        var asked = await Sse.ReadSingleMessageAsync(first);
        var result = asked.GetProperty("result");
        Assert.Equal("input_required", result.GetProperty("resultType").GetString());
        Assert.Equal("awaiting-confirmation", result.GetProperty("requestState").GetString());
        Assert.Equal("elicitation/create", result.GetProperty("inputRequests").GetProperty("confirm").GetProperty("method").GetString());
        Assert.False(first.Headers.Contains(CreditCalls.ChargeHeader));

        using var retry = await CallAsync(host, 2, "confirm_order",
            extraParams: ""","requestState":"awaiting-confirmation","inputResponses":{"confirm":{"action":"accept","content":{"ok":true}}}""");
        Assert.Equal(HttpStatusCode.OK, retry.StatusCode);
        var done = await Sse.ReadSingleMessageAsync(retry);
        Assert.Equal("ordered", done.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal($"{Price}", CreditCalls.Header(retry, CreditCalls.ChargeHeader));
        Assert.Equal($"{Balance - Price}", CreditCalls.Header(retry, CreditCalls.BalanceHeader));

        Assert.Equal([("Usage", -Price, "mrtr-1"), ("Refund", Price, "mrtr-1"), ("Usage", -Price, "mrtr-2")], await RowsAsync(host));
        Assert.Equal(Balance - Price, await BalanceAsync(host));
    }

    [Fact]
    public async Task A_url_elicitation_required_error_reaches_the_client_unchanged_and_is_refunded()
    {
        await using var host = await StartAsync();

        using var response = await CallAsync(host, 3, "sign_in_first", extraParams: "");

        var answer = await Sse.ReadSingleMessageAsync(response);
        var error = answer.GetProperty("error");
        Assert.Equal((int)McpErrorCode.UrlElicitationRequired, error.GetProperty("code").GetInt32());
        Assert.Equal("Sign in at the billing portal first.", error.GetProperty("message").GetString());
        Assert.Equal("https://billing.example.com/sign-in", error.GetProperty("data").GetProperty("elicitations")[0].GetProperty("url").GetString());
        Assert.False(response.Headers.Contains(CreditCalls.ChargeHeader));
        Assert.Equal([("Usage", -Price, "mrtr-3"), ("Refund", Price, "mrtr-3")], await RowsAsync(host));
        Assert.Equal(Balance, await BalanceAsync(host));
    }

    private static Task<HttpResponseMessage> CallAsync(GuardedHost host, long id, string tool, string extraParams) =>
        host.PostMcpAsync(
            "{\"jsonrpc\":\"2.0\",\"id\":" + id + ",\"method\":\"tools/call\",\"params\":{\"name\":\"" + tool + "\",\"arguments\":{}" + extraParams
                + ",\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"" + V2026 + "\",\"io.modelcontextprotocol/clientCapabilities\":{\"elicitation\":{\"form\":{},\"url\":{}}}}}}",
            headers: new Dictionary<string, string>
            {
                ["MCP-Protocol-Version"] = V2026,
                ["Mcp-Method"] = "tools/call",
                ["Mcp-Name"] = tool,
                ["X-Request-Id"] = $"mrtr-{id}",
            });

    private static async Task<List<(string, long, string?)>> RowsAsync(GuardedHost host)
    {
        var page = await host.Services.GetRequiredService<IMcpGuardLedgerStore>().GetLedgerAsync("alice", null, 100, default);
        return [.. page.Entries.Reverse().Where(e => e.RequestId is not null).Select(e => (e.Kind.ToString(), e.AmountMicro, e.RequestId))];
    }

    private static async Task<long> BalanceAsync(GuardedHost host) =>
        (await host.Services.GetRequiredService<IMcpGuardLedgerStore>().GetAccountAsync("alice", 0, DateTimeOffset.UtcNow, default))!.BalanceMicro;

    private static Task<GuardedHost> StartAsync() =>
        GuardedHost.StartMcpAsync(
            server => server.WithTools<RoundTripTools>().WithMcpGuard(),
            GuardConfiguration.ApiKeys(GuardConfiguration.Alice()).WithCredits("InMemory", ("alice", Balance)).With(new Dictionary<string, string?>
            {
                ["McpGuard:Tools:confirm_order:Price"] = $"{Price}",
                ["McpGuard:Tools:sign_in_first:Price"] = $"{Price}",
            }));

    [McpServerToolType]
    private sealed class RoundTripTools
    {
        [McpServerTool(Name = "confirm_order"), Description("Asks the user to confirm, then orders.")]
        public static string ConfirmOrder(RequestContext<CallToolRequestParams> context)
        {
            if (context.Params?.RequestState != "awaiting-confirmation")
            {
                throw new InputRequiredException(
                    new Dictionary<string, InputRequest>
                    {
                        ["confirm"] = InputRequest.ForElicitation(new ElicitRequestParams
                        {
                            Message = "Confirm the order?",
                            RequestedSchema = new ElicitRequestParams.RequestSchema
                            {
                                Properties = new Dictionary<string, ElicitRequestParams.PrimitiveSchemaDefinition> { ["ok"] = new ElicitRequestParams.BooleanSchema() },
                            },
                        }),
                    },
                    "awaiting-confirmation");
            }

            return "ordered";
        }

        [McpServerTool(Name = "sign_in_first"), Description("Needs the user to sign in at a URL first.")]
        public static string SignInFirst() =>
            throw new UrlElicitationRequiredException(
                "Sign in at the billing portal first.",
                [new ElicitRequestParams { Mode = "url", ElicitationId = "sign-in-1", Url = "https://billing.example.com/sign-in", Message = "Sign in" }]);
    }
}
