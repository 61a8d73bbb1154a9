using System.Net;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace McpGuard.Tests.ScaleOut;

/// <summary><c>AddHealthChecks().AddMcpGuardStores()</c>: the sample's <c>/health</c> reports each store McpGuard uses.</summary>
public sealed class HealthCheckTests
{
    [Fact]
    public async Task The_sample_on_its_SQLite_file_is_healthy()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await host.Client.GetAsync(new Uri("/health", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());
        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(["mcpguard-keys", "mcpguard-ledger", "mcpguard-rate-limits"], report.Entries.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("in process", report.Entries["mcpguard-rate-limits"].Description);
        Assert.Equal($"SQLite at {CreditCalls.LedgerPath(host)}", report.Entries["mcpguard-ledger"].Description);
        Assert.Equal($"SQLite at {CreditCalls.LedgerPath(host)}", report.Entries["mcpguard-keys"].Description);
    }

    [Fact]
    public async Task A_SQLite_file_that_no_longer_reads_makes_the_ledger_and_the_key_store_unhealthy()
    {
        await using var host = await GuardedHost.StartSampleAsync();
        var path = CreditCalls.LedgerPath(host);
        SqliteConnection.ClearAllPools();
        // What a disk that lost the file's first page would leave: SQLite no longer recognises it.
        await using (var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            await file.WriteAsync(new byte[4096]);
        }

        using var response = await host.Client.GetAsync(new Uri("/health", UriKind.Relative));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("Unhealthy", await response.Content.ReadAsStringAsync());
        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Unhealthy, report.Entries["mcpguard-ledger"].Status);
        Assert.Equal(HealthStatus.Unhealthy, report.Entries["mcpguard-keys"].Status);
        Assert.StartsWith($"SQLite at {path}: SQLite Error", report.Entries["mcpguard-ledger"].Description, StringComparison.Ordinal);
        Assert.Equal(HealthStatus.Healthy, report.Entries["mcpguard-rate-limits"].Status);
    }

    [Fact]
    public async Task A_ledger_whose_journal_failed_to_write_is_unhealthy_until_the_app_restarts()
    {
        var journal = new FailingJournal();
        await using var ledger = new McpGuard.Credits.LedgerEngine(journal, TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        await using var host = await GuardedHost.StartSampleAsync(configure: builder =>
            builder.ConfigureServices(services => services.AddSingleton<IMcpGuardLedgerStore>(ledger)));
        var health = host.Services.GetRequiredService<HealthCheckService>();
        Assert.Equal(HealthStatus.Healthy, (await health.CheckHealthAsync()).Entries["mcpguard-ledger"].Status);

        journal.Failure = new IOException("No space left on device");
        using (var response = await host.PostMcpAsync(CreditCalls.Add(1)))
        {
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        }

        var report = await health.CheckHealthAsync();
        Assert.Equal(HealthStatus.Unhealthy, report.Entries["mcpguard-ledger"].Status);
        Assert.Equal(
            $"SQLite at {CreditCalls.LedgerPath(host)}: the ledger failed to write and accepts no changes until the app restarts: No space left on device",
            report.Entries["mcpguard-ledger"].Description);
        Assert.Equal(HealthStatus.Healthy, report.Entries["mcpguard-keys"].Status);
    }

    /// <summary>A journal in memory that fails every write once <see cref="Failure"/> is set, as a full disk would fail SQLite's.</summary>
    private sealed class FailingJournal : McpGuard.Credits.LedgerJournal
    {
        private readonly McpGuard.Credits.InMemoryJournal _inner = new();

        public Exception? Failure { get; set; }

        public override long Committed => _inner.Committed;

        public override McpGuard.Credits.LedgerSnapshot Load() => _inner.Load();

        public override Task AppendAsync(McpGuard.Credits.JournalWrite write)
        {
            if (Failure is { } failure)
            {
                OnFailed?.Invoke(failure);
                return Task.FromException(failure);
            }

            return _inner.AppendAsync(write);
        }

        public override McpGuard.Credits.StoredCharge? FindCharge(string requestId) => _inner.FindCharge(requestId);

        public override ValueTask<IReadOnlyList<McpGuardLedgerEntry>> ReadAsync(string account, long? before, int limit, CancellationToken cancellationToken) =>
            _inner.ReadAsync(account, before, limit, cancellationToken);

        public override ValueTask<IReadOnlyDictionary<string, McpGuard.Credits.LedgerSums>> SumAsync(long lastId, CancellationToken cancellationToken) =>
            _inner.SumAsync(lastId, cancellationToken);

        public override ValueTask<IReadOnlyList<McpGuardLedgerTotal>> TotalsAsync(DateTimeOffset from, DateTimeOffset to, TimeSpan bucket, CancellationToken cancellationToken) =>
            _inner.TotalsAsync(from, to, bucket, cancellationToken);
    }

    [Fact]
    public async Task A_shared_rate_limit_store_that_does_not_answer_in_time_is_unhealthy()
    {
        await using var host = await GuardedHost.StartSampleAsync(
            new Dictionary<string, string?> { ["McpGuard:StoreTimeout"] = "00:00:00.2" },
            configure: builder => builder.ConfigureServices(services => services.AddSingleton<IMcpGuardRateLimitStore, SilentStore>()));

        using var response = await host.Client.GetAsync(new Uri("/health", UriKind.Relative));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("Unhealthy", await response.Content.ReadAsStringAsync());
        var report = await host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();
        Assert.Equal(HealthStatus.Unhealthy, report.Entries["mcpguard-rate-limits"].Status);
        Assert.Equal("SilentStore: no answer within 200 ms", report.Entries["mcpguard-rate-limits"].Description);
        Assert.Equal(HealthStatus.Healthy, report.Entries["mcpguard-ledger"].Status);
        Assert.Equal(HealthStatus.Healthy, report.Entries["mcpguard-keys"].Status);
    }

    /// <summary>A rate-limit store that never answers, as a Redis behind a dropped network would.</summary>
    private sealed class SilentStore : IMcpGuardRateLimitStore, IHealthCheck
    {
        public async ValueTask<McpGuardRateLimitResult> AcquireAsync(McpGuardRateLimitRequest request, CancellationToken cancellationToken)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            throw new InvalidOperationException("unreachable");
        }

        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return HealthCheckResult.Healthy();
        }
    }
}
