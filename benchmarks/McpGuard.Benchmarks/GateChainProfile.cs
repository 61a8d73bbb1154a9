using System.Diagnostics;
using System.Diagnostics.Tracing;
using System.Globalization;

namespace McpGuard.Benchmarks;

/// <summary>
/// The gate chain in a plain loop, outside BenchmarkDotNet, for profiling (<c>dotnet-trace</c>, <c>perf</c>) and for
/// quick before/after checks: <c>chain [PricedAdd|FreeEcho|FrontDoorOnly|all] [requests] [rounds] [types]</c>.
/// Prints the guard's own time and bytes per request (the same context built without the guard is measured in
/// alternating rounds and subtracted; medians over the rounds). With <c>types</c>, also the runtime's sampled
/// allocations (one event about every 100 KB) by type: which objects the bytes go to.
/// </summary>
internal static class GateChainProfile
{
    public static int Run(string[] args)
    {
        var scenarios = args.Length > 1 && args[1] != "all"
            ? [Enum.Parse<GateChainScenario>(args[1], ignoreCase: true)]
            : Enum.GetValues<GateChainScenario>();
        var requests = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 100_000;
        var rounds = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 7;
        var types = args.Contains("types");

        // "listen": every instrument of meter McpGuard has a listener, as when an app exports McpGuard's metrics.
        using var meters = args.Contains("listen") ? new System.Diagnostics.Metrics.MeterListener() : null;
        if (meters is not null)
        {
            meters.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == "McpGuard")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            meters.SetMeasurementEventCallback<long>(static (_, _, _, _) => { });
            meters.SetMeasurementEventCallback<double>(static (_, _, _, _) => { });
            meters.Start();
        }

        foreach (var scenario in scenarios)
        {
            var bench = new GateChainBenchmarks { Scenario = scenario };
            bench.Setup();
            try
            {
                // Past the slow start (tiered and PGO recompilation) before anything is measured.
                Loop(bench.Guard, Math.Max(requests, 200_000));
                Loop(bench.ContextOnly, requests);
                var guard = new List<(double Ns, double Bytes)>();
                var context = new List<(double Ns, double Bytes)>();
                for (var round = 0; round < rounds; round++)
                {
                    context.Add(Loop(bench.ContextOnly, requests));
                    guard.Add(Loop(bench.Guard, requests));
                }

                var (contextNs, contextBytes) = (Median(context.Select(c => c.Ns)), Median(context.Select(c => c.Bytes)));
                var (guardNs, guardBytes) = (Median(guard.Select(g => g.Ns)), Median(guard.Select(g => g.Bytes)));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{scenario,-14} guard {guardNs - contextNs,8:F0} ns {guardBytes - contextBytes,6:F0} B   (with context {guardNs:F0} ns {guardBytes:F0} B; context alone {contextNs:F0} ns {contextBytes:F0} B; rounds {string.Join(' ', guard.Select(g => (g.Ns - contextNs).ToString("F0", CultureInfo.InvariantCulture)))})"));

                if (types)
                {
                    using var listener = new AllocationListener();
                    Loop(bench.Guard, requests);
                    listener.Print(requests);
                }
            }
            finally
            {
                bench.Cleanup();
            }
        }

        return 0;
    }

    private static (double Ns, double Bytes) Loop(Func<int> request, int requests)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var started = Stopwatch.GetTimestamp();
        for (var i = 0; i < requests; i++)
        {
            request();
        }

        var elapsed = Stopwatch.GetElapsedTime(started);
        var bytes = GC.GetAllocatedBytesForCurrentThread() - before;
        return (elapsed.TotalNanoseconds / requests, (double)bytes / requests);
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>Counts the runtime's <c>GCAllocationTick</c> samples by type.</summary>
    private sealed class AllocationListener : EventListener
    {
        private readonly Dictionary<string, (long Samples, long Bytes)> _byType = new(StringComparer.Ordinal);
        private readonly Lock _lock = new();

        protected override void OnEventSourceCreated(EventSource source)
        {
            if (source.Name == "Microsoft-Windows-DotNETRuntime")
            {
                EnableEvents(source, EventLevel.Verbose, (EventKeywords)0x1); // GC
            }
        }

        protected override void OnEventWritten(EventWrittenEventArgs data)
        {
            if (data.EventName is not { } name || !name.StartsWith("GCAllocationTick", StringComparison.Ordinal) || data.PayloadNames is null)
            {
                return;
            }

            var type = data.Payload![data.PayloadNames.IndexOf("TypeName")] as string ?? "?";
            var amountIndex = data.PayloadNames.IndexOf("AllocationAmount64");
            var amount = amountIndex >= 0 ? Convert.ToInt64(data.Payload[amountIndex], CultureInfo.InvariantCulture) : 100_000;
            lock (_lock)
            {
                var (samples, bytes) = _byType.GetValueOrDefault(type);
                _byType[type] = (samples + 1, bytes + amount);
            }
        }

        public void Print(int requests)
        {
            lock (_lock)
            {
                var total = _byType.Values.Sum(v => v.Bytes);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    sampled allocations ({_byType.Values.Sum(v => v.Samples)} samples), estimated bytes per request by type:"));
                foreach (var (type, (samples, bytes)) in _byType.OrderByDescending(t => t.Value.Bytes).Take(45))
                {
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"    {(double)bytes / requests,8:F1} B  {100.0 * bytes / total,5:F1}%  {type}"));
                }
            }
        }
    }
}
