using System.Net;
using System.Text.Json.Nodes;
using McpGuard.Protocol;
using McpGuard.Tests.Infrastructure;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Protocol;

/// <summary>
/// The bodies that walked past the guard before the one-reading rule, sent to the sample's real <c>MapMcp()</c> as
/// the attacker sent them: each is refused with 400 before any gate, and the ledger holds nothing new.
/// </summary>
public sealed class OneReadingOnTheSampleTests
{
    private const string PremiumByCase = """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"premium_report","arguments":{"topic":"tea"}}}""";

    [Fact]
    public async Task Bob_cannot_run_premium_report_by_spelling_name_in_another_case()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        var before = LedgerFile.Rows(CreditCalls.LedgerPath(host), "bob");

        using var response = await host.PostMcpAsync(PremiumByCase, apiKey: DemoKeys.Bob);

        await AssertJsonRpcErrorAsync(
            response, HttpStatusCode.BadRequest, null, -32600, "Invalid Request: member 'params.Name' must be spelled 'name'.", "invalid_request");
        Assert.Equal(before, LedgerFile.Rows(CreditCalls.LedgerPath(host), "bob"));
    }

    [Theory]
    [InlineData("NAME")]
    [InlineData("nAmE")]
    [InlineData("n\\u0041me")]
    public async Task With_tools_call_anonymous_nobody_runs_premium_report_by_spelling_name_in_another_case(string member)
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Auth:AnonymousMethods:0"] = "tools/call",
        });

        using var response = await host.PostMcpAsync(
            $$$"""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"{{{member}}}":"premium_report","arguments":{"topic":"tea"} } }""", apiKey: null);

        var shown = member.Replace("\\u0041", "A", StringComparison.Ordinal);
        await AssertJsonRpcErrorAsync(
            response, HttpStatusCode.BadRequest, null, -32600, $"Invalid Request: member 'params.{shown}' must be spelled 'name'.", "invalid_request");
    }

    [Fact]
    public async Task A_priced_call_with_a_lone_surrogate_in_its_arguments_is_a_parse_error_and_charges_nothing()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        var before = LedgerFile.Rows(CreditCalls.LedgerPath(host), "alice");

        using var response = await host.PostMcpAsync(
            """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"premium_report","arguments":{"topic":"\ud800"}}}""", apiKey: DemoKeys.Alice);

        // parse_error echoes no id: JSON-RPC sends null when the body could not be read.
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Null(response.Headers.WwwAuthenticate.FirstOrDefault());
        var expected = new JsonObject
        {
            ["jsonrpc"] = "2.0",
            ["id"] = null,
            ["error"] = new JsonObject
            {
                ["code"] = -32700,
                ["message"] = McpEnvelopeParser.LoneSurrogateDetail,
                ["data"] = new JsonObject { ["reason"] = "parse_error", ["request_id"] = RequestId(response) },
            },
        };
        AssertJsonEqual(expected, JsonNode.Parse(text)!);
        Assert.Equal(before, LedgerFile.Rows(CreditCalls.LedgerPath(host), "alice"));
    }

    [Fact]
    public async Task A_priced_call_with_its_arguments_twice_is_refused_and_charges_nothing()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        var before = LedgerFile.Rows(CreditCalls.LedgerPath(host), "alice");

        using var response = await host.PostMcpAsync(
            """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"premium_report","arguments":{"topic":"tea"},"arguments":{"topic":"coffee"}}}""",
            apiKey: DemoKeys.Alice);

        await AssertJsonRpcErrorAsync(
            response, HttpStatusCode.BadRequest, null, -32600, "Invalid Request: duplicate member 'params.arguments'.", "invalid_request");
        Assert.Equal(before, LedgerFile.Rows(CreditCalls.LedgerPath(host), "alice"));
    }
}
