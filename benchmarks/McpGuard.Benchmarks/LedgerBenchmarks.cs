using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using McpGuard.Credits;
using Microsoft.Extensions.Logging.Abstractions;

namespace McpGuard.Benchmarks;

/// <summary>Which built-in journal sits under the ledger engine.</summary>
public enum LedgerStoreKind
{
    /// <summary>Rows kept in process memory.</summary>
    InMemory,

    /// <summary>SQLite in WAL mode with <c>synchronous=FULL</c> and group commit.</summary>
    Sqlite,
}

/// <summary>
/// Reserve-and-settle throughput of the ledger store. <see cref="Charge"/> is the success path (a charge is the
/// reservation; settling a served call writes nothing more); <see cref="ChargeAndRefund"/> is the failure path
/// (the charge is given back). Each invocation runs <see cref="Operations"/> operations spread over
/// <see cref="Callers"/> concurrent tasks, so the reported time (and Op/s) is per operation.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(ReserveSettle.ShortJob))]
public class LedgerBenchmarks
{
    /// <summary>Operations per invocation, split evenly between the callers.</summary>
    public const int Operations = 4096;

    private const long Price = 800;
    private static readonly DateTimeOffset Now = new(2026, 3, 14, 12, 0, 0, TimeSpan.Zero);

    private LedgerEngine _engine = null!;
    private string? _directory;
    private McpGuardChargeRequest[] _requests = [];
    private int _iteration;

    /// <summary>The store under test.</summary>
    [Params(LedgerStoreKind.InMemory, LedgerStoreKind.Sqlite)]
    public LedgerStoreKind Store { get; set; }

    /// <summary>Concurrent callers.</summary>
    [Params(1, 32)]
    public int Callers { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        LedgerJournal journal;
        if (Store == LedgerStoreKind.Sqlite)
        {
            _directory = Path.Combine(Path.GetTempPath(), "mcpguard-bench-" + Guid.NewGuid().ToString("N"));
            journal = new SqliteJournal(new McpGuard.Storage.SqliteDatabase(Path.Combine(_directory, "ledger.db")));
        }
        else
        {
            journal = new InMemoryJournal();
        }

        _engine = new LedgerEngine(journal, TimeProvider.System, NullLogger.Instance);
    }

    /// <summary>A fresh account with a large balance and no cap, and the iteration's request ids, made outside the measurement.</summary>
    [IterationSetup]
    public void NewAccount() => _requests = ReserveSettle.NewAccount(_engine, ++_iteration, Operations, Price, Now);

    /// <summary>Reserve and settle: one durable charge per call.</summary>
    [Benchmark(OperationsPerInvoke = Operations)]
    public Task Charge() => RunAsync(refund: false);

    /// <summary>Reserve and give back: a durable charge, then a durable refund.</summary>
    [Benchmark(OperationsPerInvoke = Operations)]
    public Task ChargeAndRefund() => RunAsync(refund: true);

    [GlobalCleanup]
    public void Cleanup()
    {
        _engine.DisposeAsync().AsTask().GetAwaiter().GetResult();
        if (_directory is not null)
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    private Task RunAsync(bool refund) => ReserveSettle.RunAsync(_engine, _requests, Callers, refund, Now);
}
