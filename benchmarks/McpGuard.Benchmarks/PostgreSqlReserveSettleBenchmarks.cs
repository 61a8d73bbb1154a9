using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using McpGuard.PostgreSql;
using Microsoft.Extensions.Logging.Abstractions;

namespace McpGuard.Benchmarks;

/// <summary>
/// Reserve-and-settle throughput of the PostgreSQL ledger (McpGuard.PostgreSql) with group commit, against the server
/// named by <c>MCPGUARD_BENCH_POSTGRES</c> (an Npgsql connection string; see docs/postgresql.md for a throwaway cluster).
/// Like <see cref="LedgerBenchmarks"/>: <see cref="Charge"/> is the success path, <see cref="ChargeAndRefund"/> the
/// failure path, <see cref="Operations"/> operations per invocation spread over <see cref="Callers"/> concurrent tasks.
/// Each run works in a schema of its own, dropped at the end.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(ReserveSettle.ShortJob))]
public class PostgreSqlReserveSettleBenchmarks
{
    /// <summary>Operations per invocation, split evenly between the callers.</summary>
    public const int Operations = 4096;

    private const long Price = 800;
    private static readonly DateTimeOffset Now = new(2026, 3, 14, 12, 0, 0, TimeSpan.Zero);

    private PostgreSqlDatabase _database = null!;
    private PostgreSqlLedgerStore _store = null!;
    private McpGuardChargeRequest[] _requests = [];
    private string _schema = "";
    private int _iteration;

    /// <summary>Concurrent callers.</summary>
    [Params(1, 32)]
    public int Callers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var connectionString = Environment.GetEnvironmentVariable("MCPGUARD_BENCH_POSTGRES") is { Length: > 0 } given
            ? given
            : throw new InvalidOperationException("Set MCPGUARD_BENCH_POSTGRES to an Npgsql connection string (docs/postgresql.md shows how to start a throwaway cluster).");
        _schema = $"bench_{Guid.NewGuid():N}";
        _database = new PostgreSqlDatabase(connectionString, _schema, TimeSpan.FromSeconds(10), NullLogger.Instance);
        _store = new PostgreSqlLedgerStore(_database, TimeProvider.System, NullLogger.Instance);
    }

    /// <summary>A fresh account with a large balance and no cap, and the iteration's request ids, made outside the measurement.</summary>
    [IterationSetup]
    public void NewAccount() => _requests = ReserveSettle.NewAccount(_store, ++_iteration, Operations, Price, Now);

    /// <summary>Reserve and settle: one durable charge per call.</summary>
    [Benchmark(OperationsPerInvoke = Operations)]
    public Task Charge() => RunAsync(refund: false);

    /// <summary>Reserve and give back: a durable charge, then a durable refund.</summary>
    [Benchmark(OperationsPerInvoke = Operations)]
    public Task ChargeAndRefund() => RunAsync(refund: true);

    [GlobalCleanup]
    public void Cleanup()
    {
        _store.DisposeAsync().AsTask().GetAwaiter().GetResult();
        using (var command = _database.DataSource.CreateCommand($"DROP SCHEMA IF EXISTS \"{_schema}\" CASCADE;"))
        {
            command.ExecuteNonQuery();
        }

        _database.DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    private Task RunAsync(bool refund) => ReserveSettle.RunAsync(_store, _requests, Callers, refund, Now);
}
