using System.Net.Http.Headers;
using System.Runtime.ExceptionServices;
using System.Text;
using McpGuard.Sample;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.AspNetCore;

namespace McpGuard.Tests.Infrastructure;

/// <summary>
/// A real server on Kestrel at 127.0.0.1 on a free port: the sample app (its own Program.cs, hosted by
/// <see cref="WebApplicationFactory{TEntryPoint}"/>, optionally with configuration overrides), or any app a test builds.
/// Talk to it with <see cref="Client"/> or a real MCP client.
/// </summary>
public sealed class GuardedHost : IAsyncDisposable
{
    private readonly IAsyncDisposable _owner;

    private GuardedHost(IAsyncDisposable owner, IServiceProvider services, LogSink logs, HttpClient? inMemoryClient = null)
    {
        _owner = owner;
        Services = services;
        Logs = logs;
        if (inMemoryClient is not null)
        {
            Client = inMemoryClient;
            BaseAddress = inMemoryClient.BaseAddress!;
            return;
        }

        var address = services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        BaseAddress = new Uri(address);
        Client = new HttpClient { BaseAddress = BaseAddress };
    }

    /// <summary>The app's services.</summary>
    public IServiceProvider Services { get; }

    public LogSink Logs { get; }

    public Uri BaseAddress { get; }

    public Uri McpEndpoint => new(BaseAddress, "/mcp");

    public HttpClient Client { get; }

    /// <summary>
    /// Starts the sample's Program.cs with optional configuration overrides (keys like <c>McpGuard:Errors:Format</c>,
    /// and <c>Sample:Guard</c>, which Program.cs reads before it builds the app). <paramref name="configure"/> runs after
    /// the sample registered its services, so a test's singletons replace the sample's. Throws what start-up throws.
    /// On Kestrel at 127.0.0.1, unless <paramref name="inMemory"/>: then on the factory's in-memory test server, for
    /// tests that need no socket (start-up, the app's services, plain requests through <see cref="Client"/>).
    /// </summary>
    public static async Task<GuardedHost> StartSampleAsync(
        IReadOnlyDictionary<string, string?>? configuration = null,
        Action<IWebHostBuilder>? configure = null,
        bool inMemory = false)
    {
        var logs = new LogSink();
        var factory = new SampleFactory(builder =>
        {
            builder.UseEnvironment(Environments.Production);
            // The build output folder, as when the sample runs (`dotnet run` starts it there): its copy of appsettings.json, its ledger.
            builder.UseContentRoot(AppContext.BaseDirectory);
            builder.UseSetting(WebHostDefaults.ServerUrlsKey, "http://127.0.0.1:0");
            if (configuration is not null && configuration.TryGetValue(SampleCommands.GuardSwitch, out var guard))
            {
                // Program.cs reads the switch before it builds the app: hand it over as a command-line argument.
                builder.UseSetting(SampleCommands.GuardSwitch, guard);
            }

            builder.ConfigureAppConfiguration(config => AddTestConfiguration(config, configuration));
            builder.ConfigureLogging(logging => AddTestLogging(logging, logs));
            configure?.Invoke(builder);
        });

        try
        {
            if (inMemory)
            {
                var client = factory.CreateClient(new WebApplicationFactoryClientOptions { AllowAutoRedirect = false, HandleCookies = false });
                return new GuardedHost(factory, factory.Services, logs, client);
            }

            factory.UseKestrel();
            factory.StartServer();
            return new GuardedHost(factory, factory.Services, logs);
        }
        catch (ObjectDisposedException) when (StartupFailure(logs) is { } startup)
        {
            // The app failed to start and disposed its host before WebApplicationFactory looked at it (a race on a
            // busy machine): the factory then throws ObjectDisposedException. Throw what the app threw, as the host logged it.
            await factory.DisposeAsync();
            ExceptionDispatchInfo.Throw(startup);
            throw;
        }
        catch
        {
            await factory.DisposeAsync();
            throw;
        }
    }

    /// <summary>The exception of the host's "Hosting failed to start" record (Microsoft.Extensions.Hosting event 11), if it logged one.</summary>
    private static Exception? StartupFailure(LogSink logs) =>
        logs.Entries.FirstOrDefault(e => e is { Category: "Microsoft.Extensions.Hosting.Internal.Host", EventId.Id: 11, Exception: not null })?.Exception;

    /// <summary>Starts an app the test builds: <paramref name="build"/> registers services, <paramref name="map"/> sets up the pipeline.</summary>
    public static async Task<GuardedHost> StartAsync(
        Action<WebApplicationBuilder> build,
        Action<WebApplication> map,
        IReadOnlyDictionary<string, string?>? configuration = null)
    {
        var logs = new LogSink();
        // An empty content root: the sample's appsettings.json sits in the test output folder and must not leak into test-built apps.
        var contentRoot = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "test-built-app")).FullName;
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = contentRoot, EnvironmentName = "Production" });
        AddTestConfiguration(builder.Configuration, configuration);
        AddTestLogging(builder.Logging, logs);
        build(builder);
        // Last, so that configuration a test adds (the sample's appsettings.json has "Urls": 5080) cannot move the app
        // onto a fixed port, where two tests running at once would collide.
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        map(app);
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }

        return new GuardedHost(app, app.Services, logs);
    }

    /// <summary>
    /// Starts an app the test builds around the SDK's own endpoint: <c>AddMcpGuard</c>, then
    /// <c>AddMcpServer().WithHttpTransport(transport)</c> with what <paramref name="server"/> adds (tools, prompts, filters,
    /// <c>.WithMcpGuard()</c>); the pipeline is <c>UseMcpGuard()</c>, <paramref name="beforeMcp"/> (middleware of the
    /// test's own, behind the guard) and <c>MapMcp("/mcp")</c>. <paramref name="build"/> registers more services first.
    /// </summary>
    public static Task<GuardedHost> StartMcpAsync(
        Action<IMcpServerBuilder> server,
        IReadOnlyDictionary<string, string?>? configuration = null,
        Action<HttpServerTransportOptions>? transport = null,
        Action<WebApplicationBuilder>? build = null,
        Action<WebApplication>? beforeMcp = null) =>
        StartAsync(
            builder =>
            {
                build?.Invoke(builder);
                builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
                server(builder.Services.AddMcpServer().WithHttpTransport(options => transport?.Invoke(options)));
            },
            app =>
            {
                app.UseMcpGuard();
                beforeMcp?.Invoke(app);
                app.MapMcp("/mcp");
            },
            configuration);

    private static void AddTestConfiguration(IConfigurationBuilder builder, IReadOnlyDictionary<string, string?>? configuration)
    {
        // Every host gets its own ledger file, so hosts never share balances; a test may name its own.
        builder.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["McpGuard:SqlitePath"] = Path.Combine(TempLedgerFolder, $"ledger-{Guid.NewGuid():N}.db"),
        });

        if (configuration is not null)
        {
            builder.AddInMemoryCollection(configuration);
        }
    }

    private static void AddTestLogging(ILoggingBuilder logging, LogSink logs)
    {
        logging.ClearProviders();
        logging.SetMinimumLevel(LogLevel.Debug);
        logging.AddProvider(logs);
    }

    /// <summary>The sample's own Program.cs, with the test's host settings.</summary>
    private sealed class SampleFactory(Action<IWebHostBuilder> configure) : WebApplicationFactory<Program>
    {
        protected override void ConfigureWebHost(IWebHostBuilder builder) => configure(builder);
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
        var ledger = Services.GetRequiredService<IConfiguration>()["McpGuard:SqlitePath"];
        Client.Dispose();
        if (_owner is WebApplication app)
        {
            await app.StopAsync();
        }

        await _owner.DisposeAsync();

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
