using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.Infrastructure;

/// <summary>
/// The sample's McpGuard configuration (its keys, accounts, prices, rate limits and admin key) in front of an
/// endpoint that only counts, with the admin API mapped: a test sees at once whether a request reached the endpoint
/// and whether it moved money. Kestrel logs at Debug, so a test can wait for a connection to end.
/// </summary>
public sealed class CountingHost : IAsyncDisposable
{
    private int _reached;

    private CountingHost()
    {
    }

    public GuardedHost Host { get; private set; } = null!;

    /// <summary>How many requests reached the endpoint behind the guard.</summary>
    public int Reached => Volatile.Read(ref _reached);

    public static async Task<CountingHost> StartAsync(Action<WebApplicationBuilder>? configure = null)
    {
        var counting = new CountingHost();
        counting.Host = await GuardedHost.StartAsync(
            builder =>
            {
                // The sample's appsettings.json sits in the test output folder; keep the per-host ledger and a free port.
                var ledger = builder.Configuration["McpGuard:SqlitePath"];
                builder.Configuration.AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: false);
                builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
                {
                    ["Urls"] = "http://127.0.0.1:0",
                    ["McpGuard:SqlitePath"] = ledger,
                    ["Logging:LogLevel:Default"] = "Debug",
                    ["Logging:LogLevel:Microsoft.AspNetCore.Server.Kestrel"] = "Debug",
                });
                builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
                builder.Services.AddAuthorization();
                configure?.Invoke(builder);
            },
            app =>
            {
                app.UseMcpGuard();
                app.MapPost("/mcp", () =>
                {
                    Interlocked.Increment(ref counting._reached);
                    return Results.Text("""{"reached":true}""", "application/json");
                });
                app.MapMcpGuardAdmin("/admin");
            });
        return counting;
    }

    /// <summary>
    /// Starts it with the shortest grace period Kestrel allows for a body that arrives too slowly (240 bytes/s after
    /// 1.1 s; the default is 5 s), so a test of a stalled body ends quickly.
    /// </summary>
    public static Task<CountingHost> StartWithQuickBodyTimeoutAsync() =>
        StartAsync(builder => builder.WebHost.ConfigureKestrel(kestrel =>
            kestrel.Limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(1.1))));

    /// <summary>An account's ledger as the admin API shows it (raw JSON), to see afterwards that nothing moved.</summary>
    public async Task<string> LedgerAsync(string account)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/admin/accounts/{account}/ledger");
        request.Headers.TryAddWithoutValidation("Authorization", "Bearer " + Admin.AdminTestKit.DemoAdminKey);
        using var response = await Host.Client.SendAsync(request);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    /// <summary>Kestrel's "connection stopped" log lines so far: wait for one more to know a connection is fully done.</summary>
    public int ConnectionsStopped =>
        Host.Logs.Entries.Count(e => e.Category == "Microsoft.AspNetCore.Server.Kestrel.Connections" && e.EventId.Id == 2);

    public ValueTask DisposeAsync() => Host.DisposeAsync();
}
