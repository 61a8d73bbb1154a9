using System.Net.Http.Headers;
using System.Text;
using McpGuard.Sample;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace McpGuard.Tests.Infrastructure;

/// <summary>
/// A real server on Kestrel at 127.0.0.1 on a free port: the sample app (optionally with configuration
/// overrides), or any app a test builds. Talk to it with <see cref="Client"/> or a real MCP client.
/// </summary>
public sealed class GuardedHost : IAsyncDisposable
{
    private GuardedHost(WebApplication app, LogSink logs)
    {
        App = app;
        Logs = logs;
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        BaseAddress = new Uri(address);
        Client = new HttpClient { BaseAddress = BaseAddress };
    }

    public WebApplication App { get; }

    public LogSink Logs { get; }

    public Uri BaseAddress { get; }

    public Uri McpEndpoint => new(BaseAddress, "/mcp");

    public HttpClient Client { get; }

    /// <summary>Starts the sample server with optional configuration overrides (keys like <c>McpGuard:Errors:Format</c>).</summary>
    public static Task<GuardedHost> StartSampleAsync(IReadOnlyDictionary<string, string?>? configuration = null, Action<WebApplicationBuilder>? configure = null)
    {
        var logs = new LogSink();
        var app = SampleServer.Create(["--urls", "http://127.0.0.1:0"], builder =>
        {
            Prepare(builder, logs, configuration);
            configure?.Invoke(builder);
        });
        return StartAsync(app, logs);
    }

    /// <summary>Starts an app the test builds: <paramref name="build"/> registers services, <paramref name="map"/> sets up the pipeline.</summary>
    public static Task<GuardedHost> StartAsync(
        Action<WebApplicationBuilder> build,
        Action<WebApplication> map,
        IReadOnlyDictionary<string, string?>? configuration = null)
    {
        var logs = new LogSink();
        // An empty content root: the sample's appsettings.json sits in the test output folder and must not leak into test-built apps.
        var contentRoot = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "test-built-app")).FullName;
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = contentRoot, EnvironmentName = "Production" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        Prepare(builder, logs, configuration);
        build(builder);
        var app = builder.Build();
        map(app);
        return StartAsync(app, logs);
    }

    private static void Prepare(WebApplicationBuilder builder, LogSink logs, IReadOnlyDictionary<string, string?>? configuration)
    {
        // Every host gets its own ledger file, so hosts never share balances; a test may name its own.
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["McpGuard:Credits:SqlitePath"] = Path.Combine(TempLedgerFolder, $"ledger-{Guid.NewGuid():N}.db"),
        });

        if (configuration is not null)
        {
            builder.Configuration.AddInMemoryCollection(configuration);
        }

        builder.Logging.ClearProviders();
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        builder.Logging.AddProvider(logs);
    }

    private static async Task<GuardedHost> StartAsync(WebApplication app, LogSink logs)
    {
        await app.StartAsync();
        return new GuardedHost(app, logs);
    }

    /// <summary>
    /// POSTs a raw body to <c>/mcp</c> with the headers a Streamable HTTP client sends, unless overridden.
    /// Sends <paramref name="apiKey"/> (the sample's demo key for alice, by default) as a Bearer token; pass null to send none.
    /// </summary>
    public Task<HttpResponseMessage> PostMcpAsync(
        string body,
        string? contentType = "application/json",
        string? accept = "application/json, text/event-stream",
        IReadOnlyDictionary<string, string>? headers = null,
        string path = "/mcp",
        string? apiKey = DemoKeys.Alice) =>
        PostMcpAsync(Encoding.UTF8.GetBytes(body), contentType, accept, headers, path, apiKey);

    /// <summary>POSTs raw bytes to <c>/mcp</c>.</summary>
    public async Task<HttpResponseMessage> PostMcpAsync(
        byte[] body,
        string? contentType = "application/json",
        string? accept = "application/json, text/event-stream",
        IReadOnlyDictionary<string, string>? headers = null,
        string path = "/mcp",
        string? apiKey = DemoKeys.Alice)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new ByteArrayContent(body) };
        if (contentType is not null)
        {
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }

        if (accept is not null)
        {
            request.Headers.TryAddWithoutValidation("Accept", accept);
        }

        if (apiKey is not null && headers?.ContainsKey("Authorization") != true)
        {
            request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {apiKey}");
        }

        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            if (!request.Headers.TryAddWithoutValidation(name, value))
            {
                request.Content.Headers.TryAddWithoutValidation(name, value);
            }
        }

        return await Client.SendAsync(request);
    }

    public async ValueTask DisposeAsync()
    {
        // The per-host ledger file (and its WAL) goes with the host, unless a test chose its own file.
        var ledger = App.Configuration["McpGuard:Credits:SqlitePath"];
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();

        if (ledger is not null && ledger.StartsWith(TempLedgerFolder, StringComparison.Ordinal))
        {
            foreach (var suffix in new[] { "", "-wal", "-shm" })
            {
                File.Delete(ledger + suffix);
            }
        }
    }

    private static readonly string TempLedgerFolder = Path.Combine(Path.GetTempPath(), "mcpguard-tests");
}
