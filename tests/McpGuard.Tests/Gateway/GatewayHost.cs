using McpGuard.Gateway;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace McpGuard.Tests.Gateway;

/// <summary>
/// The gateway (McpGuard.Gateway's own app, as <c>mcpguard-gateway</c> builds it) on a free loopback port, reading the
/// <c>appsettings.json</c> a test writes into its working folder and the command line a test gives it.
/// </summary>
internal sealed class GatewayHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _folder;

    private GatewayHost(WebApplication app, string folder, LogSink logs)
    {
        _app = app;
        _folder = folder;
        Logs = logs;
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        BaseAddress = new Uri(address);
        Client = new HttpClient { BaseAddress = BaseAddress };
    }

    public Uri BaseAddress { get; }

    public Uri McpEndpoint => new(BaseAddress, "/mcp");

    public HttpClient Client { get; }

    public LogSink Logs { get; }

    public IServiceProvider Services => _app.Services;

    public string LedgerPath => Path.Combine(_folder, "mcpguard-ledger.db");

    public static async Task<GatewayHost> StartAsync(string appsettingsJson, params string[] args)
    {
        var folder = Directory.CreateDirectory(Path.Combine(Path.GetTempPath(), "mcpguard-gateway-tests", Guid.NewGuid().ToString("N"))).FullName;
        await File.WriteAllTextAsync(Path.Combine(folder, "appsettings.json"), appsettingsJson);
        var logs = new LogSink();
        var app = GatewayApp.Build(["--urls", "http://127.0.0.1:0", .. args], folder, builder =>
        {
            builder.Logging.ClearProviders();
            builder.Logging.SetMinimumLevel(LogLevel.Debug);
            builder.Logging.AddProvider(logs);
        });
        await app.StartAsync();
        return new GatewayHost(app, folder, logs);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
