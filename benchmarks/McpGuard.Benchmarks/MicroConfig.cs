using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;

namespace McpGuard.Benchmarks;

/// <summary>
/// A short job for the nanosecond-to-microsecond benchmarks: one launch, twelve warm-ups and fifteen measured
/// iterations, with the median next to the mean because the machine is shared and noisy. Each class finishes in
/// a few minutes. The warm-ups are many on purpose: on two busy cores the gate chain runs at two to three times
/// its steady-state cost for its first hundred thousand or so calls (tiered and PGO recompilation competing for
/// the CPU), and with three warm-ups half of the measured iterations fell in that phase.
/// </summary>
public sealed class MicroConfig : ManualConfig
{
    /// <summary>Creates the config; BenchmarkDotNet picks the calls per iteration.</summary>
    public MicroConfig()
        : this(0)
    {
    }

    /// <summary>Creates the config; <paramref name="invocationCount"/> fixes the calls per iteration (0: BenchmarkDotNet picks).</summary>
    public MicroConfig(int invocationCount)
    {
        var job = Job.Default
            .WithLaunchCount(1)
            .WithWarmupCount(12)
            .WithIterationCount(15)
            .WithId("Short");
        if (invocationCount > 0)
        {
            job = job.WithInvocationCount(invocationCount).WithUnrollFactor(1);
        }

        AddJob(job);
        AddColumn(StatisticColumn.Median);
        AddColumn(StatisticColumn.OperationsPerSecond);
    }

    /// <summary>Sixteen thousand requests per iteration: bounds how much the in-memory ledger grows over a run.</summary>
    public sealed class FixedInvocations : ManualConfig
    {
        /// <summary>Creates the config.</summary>
        public FixedInvocations()
        {
            Add(new MicroConfig(16_384));
        }
    }
}
