using System.Diagnostics;
using System.Globalization;
using McpGuard.Credits;
using Microsoft.Extensions.Logging.Abstractions;

namespace McpGuard.Benchmarks;

/// <summary>
/// A plain timed run for profiling (under <c>strace -c</c> or <c>perf</c>), outside BenchmarkDotNet:
/// <c>soak [sqlite|inmemory] [callers] [seconds] [refund]</c>. Prints operations per second, latency percentiles and
/// the process's CPU time and allocated bytes per operation.
/// </summary>
internal static class LedgerSoak
{
    public static async Task<int> RunAsync(string[] args)
    {
        var store = args.Length > 1 ? args[1] : "sqlite";
        var callers = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 32;
        var seconds = args.Length > 3 ? double.Parse(args[3], CultureInfo.InvariantCulture) : 5;
        var refund = args.Length > 4 && args[4] == "refund";
        var directory = Path.Combine(Path.GetTempPath(), "mcpguard-soak-" + Guid.NewGuid().ToString("N"));
        LedgerJournal journal = store == "inmemory" ? new InMemoryJournal() : new SqliteJournal(new McpGuard.Storage.SqliteDatabase(Path.Combine(directory, "ledger.db")));
        var engine = new LedgerEngine(journal, TimeProvider.System, NullLogger.Instance);
        try
        {
            var now = TimeProvider.System.GetUtcNow();
            await engine.TopUpAsync("soak", 1_000_000_000_000, "soak", now, CancellationToken.None);
            var latencies = new List<double>[callers];
            var cpuBefore = Process.GetCurrentProcess().TotalProcessorTime;
            var bytesBefore = GC.GetTotalAllocatedBytes(precise: true);
            var clock = Stopwatch.StartNew();
            var until = TimeSpan.FromSeconds(seconds);
            var tasks = new Task<long>[callers];
            for (var c = 0; c < callers; c++)
            {
                var caller = c;
                latencies[caller] = [];
                tasks[caller] = Task.Run(async () =>
                {
                    long done = 0;
                    while (clock.Elapsed < until)
                    {
                        var started = Stopwatch.GetTimestamp();
                        var id = McpGuard.Protocol.RequestIds.NewId();
                        var result = await engine.ChargeAsync(new McpGuardChargeRequest("soak", id, "add", 800, 0, now, newRequestId: true), CancellationToken.None);
                        if (result.Outcome != McpGuardChargeOutcome.Charged)
                        {
                            throw new InvalidOperationException($"Charge {id} was {result.Outcome}.");
                        }

                        if (refund && !await engine.RefundAsync(id, now, CancellationToken.None))
                        {
                            throw new InvalidOperationException($"Refund {id} found nothing to refund.");
                        }

                        latencies[caller].Add(Stopwatch.GetElapsedTime(started).TotalMicroseconds);
                        done++;
                    }

                    return done;
                });
            }

            var total = (await Task.WhenAll(tasks)).Sum();
            var elapsed = clock.Elapsed.TotalSeconds;
            var cpu = (Process.GetCurrentProcess().TotalProcessorTime - cpuBefore).TotalMicroseconds;
            var bytes = GC.GetTotalAllocatedBytes(precise: true) - bytesBefore;
            var all = latencies.SelectMany(l => l).Order().ToArray();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"store={store} callers={callers} refund={refund} ops={total} seconds={elapsed:F2} ops/s={total / elapsed:F0} p50={all[all.Length / 2]:F0}us p99={all[(int)(all.Length * 0.99)]:F0}us cpu/op={cpu / total:F1}us bytes/op={(double)bytes / total:F0}"));
            return 0;
        }
        finally
        {
            await engine.DisposeAsync();
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
    }
}
