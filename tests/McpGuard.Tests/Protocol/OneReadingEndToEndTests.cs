using System.Collections.Concurrent;
using System.ComponentModel;
using System.Net.Http.Headers;
using System.Text;
using CsCheck;
using McpGuard.Protocol;
using McpGuard.Tests.Infrastructure;
using McpGuard.Tests.Protocol.Differential;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol.Server;
using Xunit.Abstractions;

namespace McpGuard.Tests.Protocol;

/// <summary>
/// The differential property end to end: generated bodies POSTed over real HTTP to the SDK's own <c>MapMcp()</c> behind
/// McpGuard. Every tool, prompt and resource handler the SDK runs is recorded with its request; so is what the guard let
/// through. No handler may run for a request the guard did not see by the same method and name.
/// </summary>
public sealed class OneReadingEndToEndTests(ITestOutputHelper output)
{
    private static readonly long Iterations = long.TryParse(Environment.GetEnvironmentVariable("MCPGUARD_DIFFERENTIAL_E2E_ITER"), out var n) ? n : 1_000;

    [Fact]
    public async Task No_handler_runs_for_a_call_the_guard_did_not_see_by_the_same_name()
    {
        var guardSaw = new ConcurrentDictionary<string, (string? Method, string? Name)>();
        var serverRan = new ConcurrentBag<(string RequestId, string Method, string Name)>();
        await using var host = await StartAsync(guardSaw, serverRan);

        var seed = TestSeeds.Next();
        var statuses = new ConcurrentDictionary<int, int>();
        var serverErrors = new ConcurrentBag<string>();
        await JsonMutator.CaseGen.SampleAsync(
            async c =>
            {
                var body = JsonMutator.Build(c.Seed, c.Mutations);
                using var response = await host.PostMcpAsync(Encoding.UTF8.GetBytes(body), apiKey: DemoKeys.Bob);
                var answer = await response.Content.ReadAsStringAsync();
                if ((int)response.StatusCode >= 500)
                {
                    serverErrors.Add($"{(int)response.StatusCode} for {body}: {answer}");
                }

                statuses.AddOrUpdate((int)response.StatusCode, 1, (_, count) => count + 1);
            },
            writeLine: output.WriteLine,
            seed: seed,
            iter: Iterations,
            print: c => JsonMutator.Build(c.Seed, c.Mutations));

        var mismatches = serverRan
            .Where(run => !guardSaw.TryGetValue(run.RequestId, out var seen) || seen.Method != run.Method || seen.Name != run.Name)
            .Select(run => $"{run.Method} {run.Name} ran for {run.RequestId}, guard saw {(guardSaw.TryGetValue(run.RequestId, out var s) ? $"{s.Method} {s.Name}" : "nothing")}")
            .ToList();

        var summary = $"one-reading differential (end to end, MapMcp): {Iterations:N0} bodies, seed {seed}; handlers run {serverRan.Count:N0}, "
            + $"passed by the guard {guardSaw.Count:N0}, statuses {string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{s.Key}×{s.Value}"))}, mismatches {mismatches.Count}";
        output.WriteLine(summary);
        TestReport.Write(summary);

        Assert.Empty(mismatches);
        Assert.True(serverRan.Count > Iterations / 20, summary);
        Assert.True(serverErrors.IsEmpty, string.Join("\n", serverErrors.Take(8)));
        Assert.DoesNotContain(serverRan, run => run.Method == "tools/call" && run.Name == "premium_report");
    }

    private static Task<GuardedHost> StartAsync(
        ConcurrentDictionary<string, (string? Method, string? Name)> guardSaw,
        ConcurrentBag<(string, string, string)> serverRan) =>
        GuardedHost.StartMcpAsync(
            server => server
                .WithTools<DifferentialTools>()
                .WithPrompts<DifferentialPrompts>()
                .WithResources<DifferentialResources>()
                .WithRequestFilters(filters =>
                {
                    filters.AddCallToolFilter(next => (request, ct) =>
                    {
                        Record(serverRan, request.Services, "tools/call", request.Params?.Name);
                        return next(request, ct);
                    });
                    filters.AddGetPromptFilter(next => (request, ct) =>
                    {
                        Record(serverRan, request.Services, "prompts/get", request.Params?.Name);
                        return next(request, ct);
                    });
                    filters.AddReadResourceFilter(next => (request, ct) =>
                    {
                        Record(serverRan, request.Services, "resources/read", request.Params?.Uri);
                        return next(request, ct);
                    });
                }),
            GuardConfiguration.ApiKeys(GuardConfiguration.Bob("tools:basic")).With(new Dictionary<string, string?>
            {
                ["McpGuard:Auth:AuthorizationServers:0"] = "http://127.0.0.1/issuer",
                ["McpGuard:Auth:AnonymousMethods:0"] = "initialize",
                ["McpGuard:Tools:echo:Scopes:0"] = "tools:basic",
                ["McpGuard:Tools:add:Scopes:0"] = "tools:basic",
                ["McpGuard:Tools:premium_report:Scopes:0"] = "tools:premium",
            }),
            build: builder => builder.Services.AddHttpContextAccessor(),
            beforeMcp: app => app.Use(async (context, next) =>
            {
                if (context.Features.Get<McpGuardFeature>()?.Envelope is { } envelope)
                {
                    guardSaw[context.TraceIdentifier] = (envelope.Method, envelope.RoutingName);
                }

                await next(context);
            }));

    private static void Record(ConcurrentBag<(string, string, string)> runs, IServiceProvider? services, string method, string? name)
    {
        var context = services?.GetRequiredService<IHttpContextAccessor>().HttpContext
            ?? throw new InvalidOperationException("A handler ran outside any HTTP request.");
        runs.Add((context.TraceIdentifier, method, name ?? "(null)"));
    }
}

[McpServerToolType]
internal sealed class DifferentialTools
{
    [McpServerTool(Name = "echo"), Description("Echoes.")]
    public static string Echo(string message = "") => message;

    [McpServerTool(Name = "add"), Description("Adds.")]
    public static long Add(long a = 0, long b = 0) => a + b;

    [McpServerTool(Name = "premium_report"), Description("Needs tools:premium.")]
    public static string PremiumReport(string topic = "") => "premium " + topic;
}

[McpServerPromptType]
internal sealed class DifferentialPrompts
{
    [McpServerPrompt(Name = "summary"), Description("A prompt.")]
    public static string Summary(string topic = "") => "Summarise " + topic;
}

[McpServerResourceType]
internal sealed class DifferentialResources
{
    [McpServerResource(UriTemplate = "file:///secret.txt", Name = "secret"), Description("A resource.")]
    public static string Secret() => "secret";
}
