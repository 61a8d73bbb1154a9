using McpGuard.Tests.Infrastructure;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Xunit.Abstractions;

namespace McpGuard.Tests.Conformance;

/// <summary>
/// Priced prompts and resources in their lists, in front of a C# server (<c>WithMcpGuard()</c>): the conformance server,
/// which has prompts, resources and templates, run as a process of its own with <c>prompts/get</c> and
/// <c>resources/read</c> priced on its command line, listed by the real C# SDK client with the conformance account's key.
/// Every prompt carries the price of <c>prompts/get</c>, every resource and template that of <c>resources/read</c>, and each
/// list the caller's account; with those methods free, the lists carry neither.
/// </summary>
public sealed class ConformanceServerPriceTests(ITestOutputHelper output)
{
    private const string ApiKey = "mcpg_conformance_key";

    [Fact]
    public async Task Prompt_and_resource_lists_carry_their_methods_price_and_the_callers_account()
    {
        await using var server = await ConformanceServer.StartAsync("keys-anonymous",
        [
            "--McpGuard:Methods:prompts/get:Price=300",
            "--McpGuard:Methods:resources/read:Price=200",
        ]);
        output.WriteLine($"conformance server process {server.ProcessId}");
        await using var client = await RecordedClient.ConnectAsync(server.StatelessEndpoint, ApiKey, new McpClientOptions { ProtocolVersion = "2026-07-28" });

        // The raw results (the list overloads that take request params), so that the result's own _meta can be read.
        var prompts = await client.Client.ListPromptsAsync(new ListPromptsRequestParams());
        var resources = await client.Client.ListResourcesAsync(new ListResourcesRequestParams());
        var templates = await client.Client.ListResourceTemplatesAsync(new ListResourceTemplatesRequestParams());

        Assert.NotEmpty(prompts.Prompts);
        Assert.NotEmpty(resources.Resources);
        Assert.NotEmpty(templates.ResourceTemplates);
        Assert.All(prompts.Prompts, p => Assert.Equal("""{"amount_micro":300,"unit":"call"}""", p.Meta?["mcpguard/price"]?.ToJsonString()));
        Assert.All(resources.Resources, r => Assert.Equal("""{"amount_micro":200,"unit":"call"}""", r.Meta?["mcpguard/price"]?.ToJsonString()));
        Assert.All(templates.ResourceTemplates, t => Assert.Equal("""{"amount_micro":200,"unit":"call"}""", t.Meta?["mcpguard/price"]?.ToJsonString()));
        foreach (var meta in new[] { prompts.Meta, resources.Meta, templates.Meta })
        {
            Assert.Equal("""{"account":"conformance","balance_micro":1000000,"free_calls_left":0}""", meta?["mcpguard/account"]?.ToJsonString());
        }
    }

    [Fact]
    public async Task Free_prompt_and_resource_lists_carry_no_price_and_no_account()
    {
        await using var server = await ConformanceServer.StartAsync("keys-anonymous", []);
        await using var client = await RecordedClient.ConnectAsync(server.StatelessEndpoint, ApiKey, new McpClientOptions { ProtocolVersion = "2026-07-28" });

        var prompts = await client.Client.ListPromptsAsync(new ListPromptsRequestParams());
        var resources = await client.Client.ListResourcesAsync(new ListResourcesRequestParams());

        Assert.All(prompts.Prompts, p => Assert.Null(p.Meta?["mcpguard/price"]));
        Assert.All(resources.Resources, r => Assert.Null(r.Meta?["mcpguard/price"]));
        Assert.Null(prompts.Meta?["mcpguard/account"]);
        Assert.Null(resources.Meta?["mcpguard/account"]);
    }
}
