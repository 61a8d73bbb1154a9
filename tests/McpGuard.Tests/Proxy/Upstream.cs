using System.Collections.Concurrent;
using System.ComponentModel;
using McpGuard.Sample;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Tests.Proxy;

/// <summary>A request as the upstream received it.</summary>
internal sealed record UpstreamRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, string Body)
{
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;
}

/// <summary>
/// An upstream for the proxy on Kestrel at 127.0.0.1 (outside the code under test): the C# SDK's <c>MapMcp()</c> with
/// the sample's tools and a progress tool, or a handler of the test's own. Every request it receives is recorded.
/// </summary>
internal sealed class Upstream : IAsyncDisposable
{
    private readonly WebApplication _app;

    private Upstream(WebApplication app, ConcurrentQueue<UpstreamRequest> requests)
    {
        _app = app;
        Requests = requests;
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        Url = new Uri(new Uri(address), "/mcp");
    }

    public Uri Url { get; }

    public ConcurrentQueue<UpstreamRequest> Requests { get; }

    /// <summary>The C# SDK's Streamable HTTP server (sessions on unless <paramref name="stateless"/>, JSON-RPC over SSE) with the sample's tools and <c>progress</c>.</summary>
    public static Task<Upstream> StartMcpAsync(bool stateless = false) =>
        StartAsync(
            builder => builder.Services.AddMcpServer().WithHttpTransport(o => o.Stateless = stateless).WithTools<SampleTools>().WithTools<ProgressTools>(),
            app => app.MapMcp("/mcp"));

    /// <summary>An upstream that answers every request to <c>/mcp</c> with <paramref name="handler"/>.</summary>
    public static Task<Upstream> StartAsync(RequestDelegate handler) =>
        StartAsync(_ => { }, app => app.Map("/mcp", handler));

    private static async Task<Upstream> StartAsync(Action<WebApplicationBuilder> build, Action<WebApplication> map)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            ContentRootPath = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "test-built-app")).FullName,
            EnvironmentName = "Production",
        });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        build(builder);
        var app = builder.Build();
        var requests = new ConcurrentQueue<UpstreamRequest>();
        app.Use(async (context, next) =>
        {
            context.Request.EnableBuffering();
            var body = await new StreamReader(context.Request.Body).ReadToEndAsync(context.RequestAborted);
            context.Request.Body.Position = 0;
            var headers = context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
            requests.Enqueue(new UpstreamRequest(context.Request.Method, context.Request.Path + context.Request.QueryString, headers, body));
            await next(context);
        });
        map(app);
        await app.StartAsync();
        return new Upstream(app, requests);
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();
}

/// <summary>A tool that reports progress while it works, so a test can see notifications arrive before the result.</summary>
[McpServerToolType]
internal sealed class ProgressTools
{
    [McpServerTool(Name = "progress"), Description("Reports progress steps times, waiting delayMs between them, then answers.")]
    public static async Task<string> Progress(int steps, int delayMs, IProgress<ProgressNotificationValue> progress, CancellationToken cancellationToken)
    {
        for (var i = 1; i <= steps; i++)
        {
            await Task.Delay(delayMs, cancellationToken);
            progress.Report(new ProgressNotificationValue { Progress = i, Total = steps });
        }

        return $"done after {steps} steps";
    }
}
