using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.RateLimiting;

/// <summary>
/// Rate limits reload with the configuration file: a good reload changes limits without a restart, a bad one is
/// logged and the last good limits stay, and windows a reload does not touch keep their counters.
/// </summary>
public sealed class RateLimitReloadTests : IDisposable
{
    private const string Rejected = "McpGuard configuration reload rejected; the last good configuration stays in force. ";
    private const string AddPolicy3 = "\"add-1m\";q=3;w=60, " + RateLimitWire.DefaultPolicy;

    private static readonly DateTimeOffset HalfPastTen = new(2026, 11, 21, 10, 0, 30, TimeSpan.Zero);

    private readonly string _directory = Directory.CreateTempSubdirectory("mcpguard-ratelimit-").FullName;

    private string ConfigPath => Path.Combine(_directory, "mcpguard.json");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Changing_a_policys_permits_changes_the_limit_without_a_restart()
    {
        await WriteConfigAsync(AddPermits(3));
        await using var host = await StartAsync();
        await RateLimitWire.SpendAsync(host, DemoKeys.Bob, "add", 3);
        using (var refused = await RateLimitWire.AddAsync(host, DemoKeys.Bob, 4))
        {
            await RateLimitWire.AssertRateLimitedAsync(refused, 4, 30, "add-1m", AddPolicy3,
                "\"add-1m\";r=0;t=30, \"default-1m\";r=117;t=30, \"default-1d\";r=9997;t=50370");
        }

        await WriteConfigAsync(AddPermits(5));
        var reloaded = await WaitForLogAsync(host, 1002);

        Assert.Equal("McpGuard configuration reloaded.", reloaded.Message);
        const string AddPolicy5 = "\"add-1m\";q=5;w=60, " + RateLimitWire.DefaultPolicy;
        // A changed window is a new window: it counts from zero. The default policy's windows did not change and keep counting.
        for (var id = 5; id <= 9; id++)
        {
            using var passed = await RateLimitWire.AddAsync(host, DemoKeys.Bob, id);
            await AuthResponses.AssertToolTextAsync(passed, "3", id);
            RateLimitWire.AssertHeaders(passed, AddPolicy5,
                $"\"add-1m\";r={9 - id};t=30, \"default-1m\";r={121 - id};t=30, \"default-1d\";r={10001 - id};t=50370");
        }

        using var refusedAgain = await RateLimitWire.AddAsync(host, DemoKeys.Bob, 10);
        await RateLimitWire.AssertRateLimitedAsync(refusedAgain, 10, 30, "add-1m", AddPolicy5,
            "\"add-1m\";r=0;t=30, \"default-1m\";r=112;t=30, \"default-1d\";r=9992;t=50370");
        Assert.DoesNotContain(host.Logs.Entries, e => e.EventId.Id == 1001);
    }

    [Fact]
    public async Task A_bad_reload_is_logged_and_the_last_good_limits_stay()
    {
        await WriteConfigAsync(AddPermits(3));
        await using var host = await StartAsync();
        await RateLimitWire.SpendAsync(host, DemoKeys.Bob, "add", 2);

        await WriteConfigAsync(AddPermits(0));
        var zero = await WaitForLogAsync(host, 1001, "(got 0)");

        Assert.Equal(LogLevel.Error, zero.Level);
        Assert.Equal(Rejected + "McpGuard:RateLimits:Policies:add:Windows:0:Permits must be at least 1 (got 0).", zero.Message);
        using (var third = await RateLimitWire.AddAsync(host, DemoKeys.Bob, 3))
        {
            await AuthResponses.AssertToolTextAsync(third, "3", 3);
            RateLimitWire.AssertHeaders(third, AddPolicy3, "\"add-1m\";r=0;t=30, \"default-1m\";r=117;t=30, \"default-1d\";r=9997;t=50370");
        }

        await WriteConfigAsync("""{ "McpGuard": { "RateLimits": { "Policies": { "add": { "Windows": [ { "Permits": 3 } ] } } }, "Tools": { "add": { "RateLimitPolicy": "nope" } } } }""");
        var undefined = await WaitForLogAsync(host, 1001, "'nope'");

        Assert.Equal(Rejected + "McpGuard:Tools:add:RateLimitPolicy 'nope' is not defined under McpGuard:RateLimits:Policies.", undefined.Message);
        using (var fourth = await RateLimitWire.AddAsync(host, DemoKeys.Bob, 4))
        {
            await RateLimitWire.AssertRateLimitedAsync(fourth, 4, 30, "add-1m", AddPolicy3,
                "\"add-1m\";r=0;t=30, \"default-1m\";r=117;t=30, \"default-1d\";r=9997;t=50370");
        }

        Assert.DoesNotContain(host.Logs.Entries, e => e.EventId.Id == 1002);
    }

    [Fact]
    public async Task A_reload_that_does_not_touch_a_window_keeps_its_counters()
    {
        await WriteConfigAsync(AddPermits(3));
        await using var host = await StartAsync();
        await RateLimitWire.SpendAsync(host, DemoKeys.Bob, "add", 2);
        await RateLimitWire.SpendAsync(host, DemoKeys.Bob, "echo", 2);

        // Another policy changes, and so does an unrelated option: add's and the default policy's windows stay as they were.
        await WriteConfigAsync("""
            { "McpGuard": { "MaxRequestBodySize": 4096, "RateLimits": { "Policies": {
                "add": { "Windows": [ { "Permits": 3 } ] },
                "premium": { "Windows": [ { "Permits": 7 } ] } } } } }
            """);
        await WaitForLogAsync(host, 1002);

        using (var third = await RateLimitWire.AddAsync(host, DemoKeys.Bob, 3))
        {
            await AuthResponses.AssertToolTextAsync(third, "3", 3);
            RateLimitWire.AssertHeaders(third, AddPolicy3, "\"add-1m\";r=0;t=30, \"default-1m\";r=115;t=30, \"default-1d\";r=9995;t=50370");
        }

        using (var fourth = await RateLimitWire.AddAsync(host, DemoKeys.Bob, 4))
        {
            await RateLimitWire.AssertRateLimitedAsync(fourth, 4, 30, "add-1m", AddPolicy3,
                "\"add-1m\";r=0;t=30, \"default-1m\";r=115;t=30, \"default-1d\";r=9995;t=50370");
        }

        using var report = await host.PostMcpAsync(AuthResponses.PremiumReport(id: 5));
        Assert.Equal(System.Net.HttpStatusCode.OK, report.StatusCode);
        RateLimitWire.AssertHeaders(report, "\"premium-1m\";q=7;w=60, " + RateLimitWire.DefaultPolicy,
            "\"premium-1m\";r=6;t=30, \"default-1m\";r=119;t=30, \"default-1d\";r=9999;t=50370");
    }

    private static string AddPermits(int permits) =>
        $$"""{ "McpGuard": { "RateLimits": { "Policies": { "add": { "Windows": [ { "Permits": {{permits}} } ] } } } } }""";

    private Task<GuardedHost> StartAsync() =>
        RateLimitWire.StartSampleAsync(new FakeTimeProvider(HalfPastTen), configure: builder =>
            builder.ConfigureAppConfiguration((_, config) => config.AddJsonFile(ConfigPath, optional: false, reloadOnChange: true)));

    private Task WriteConfigAsync(string json) => ConfigFile.ReplaceAsync(ConfigPath, json);

    /// <summary>Waits for a log event (whose message contains <paramref name="containing"/>) for at most <see cref="ConfigFile.ReloadBound"/>.</summary>
    private static Task<LogEntry> WaitForLogAsync(GuardedHost host, int eventId, string containing = "") =>
        host.Logs.WaitForAsync(eventId, ConfigFile.ReloadBound, containing);
}
