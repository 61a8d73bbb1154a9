using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace McpGuard.Tests.Infrastructure;

/// <summary>Reads one instrument of meter <c>McpGuard</c> in one app (its own meter factory), with <see cref="MetricCollector{T}"/>.</summary>
internal static class Measurements
{
    public static MetricCollector<T> Collect<T>(GuardedHost host, string instrument)
        where T : struct =>
        new(host.Services.GetRequiredService<IMeterFactory>(), "McpGuard", instrument);

    /// <summary>Each measurement as "value tag=value tag=value", tags in name order, for exact comparison.</summary>
    public static string[] Lines<T>(MetricCollector<T> collector)
        where T : struct =>
        [.. collector.GetMeasurementSnapshot().Select(m =>
            string.Join(' ', m.Tags.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => $"{t.Key}={t.Value}").Prepend(m.Value.ToString()!)))];
}
