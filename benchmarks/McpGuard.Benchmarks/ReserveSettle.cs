using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;

namespace McpGuard.Benchmarks;

/// <summary>
/// What the ledger benchmarks run against a store (McpGuard's own or PostgreSQL): each of <c>callers</c> concurrent tasks
/// charges its share of <c>requests</c> one after another, and refunds each charge when <c>refund</c> is set; a charge
/// or refund that does not go through fails the run.
/// </summary>
internal static class ReserveSettle
{
    /// <summary>A fresh account with a large balance and no cap, and <paramref name="operations"/> request ids for it (made outside the measurement).</summary>
    public static McpGuardChargeRequest[] NewAccount(IMcpGuardLedgerStore store, int iteration, int operations, long price, DateTimeOffset now)
    {
        var account = $"bench-{iteration}";
        store.TopUpAsync(account, 1_000_000_000_000, "benchmark", now, CancellationToken.None).AsTask().GetAwaiter().GetResult();
        var requests = new McpGuardChargeRequest[operations];
        for (var i = 0; i < operations; i++)
        {
            requests[i] = new McpGuardChargeRequest(account, $"{account}-{i}", "add", price, 0, now, newRequestId: true);
        }

        return requests;
    }

    public static Task RunAsync(IMcpGuardLedgerStore store, McpGuardChargeRequest[] requests, int callers, bool refund, DateTimeOffset now)
    {
        var perCaller = requests.Length / callers;
        var tasks = new Task[callers];
        for (var c = 0; c < callers; c++)
        {
            var first = c * perCaller;
            tasks[c] = Task.Run(() => CallAsync(store, requests, first, perCaller, refund, now));
        }

        return Task.WhenAll(tasks);
    }

    private static async Task CallAsync(IMcpGuardLedgerStore store, McpGuardChargeRequest[] requests, int first, int count, bool refund, DateTimeOffset now)
    {
        for (var i = first; i < first + count; i++)
        {
            var request = requests[i];
            var result = await store.ChargeAsync(request, CancellationToken.None);
            if (result.Outcome != McpGuardChargeOutcome.Charged)
            {
                throw new InvalidOperationException($"Charge {request.RequestId} was {result.Outcome}.");
            }

            if (refund && !await store.RefundAsync(request.RequestId, now, CancellationToken.None))
            {
                throw new InvalidOperationException($"Refund {request.RequestId} found nothing to refund.");
            }
        }
    }

    /// <summary>
    /// A short job: one invocation per iteration, a few warm-ups and ten measured iterations, so a whole filter runs in a
    /// few minutes. Adds the Op/s column.
    /// </summary>
    internal sealed class ShortJob : ManualConfig
    {
        public ShortJob()
        {
            AddJob(Job.Default
                .WithLaunchCount(1)
                .WithWarmupCount(3)
                .WithIterationCount(10)
                .WithInvocationCount(1)
                .WithUnrollFactor(1)
                .WithId("Short"));
            AddColumn(StatisticColumn.OperationsPerSecond);
        }
    }
}
