using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using McpGuard.Credits;
using McpGuard.Tests.Credits;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace McpGuard.Tests.ScaleOut.PostgreSql;

/// <summary>
/// Failures under load: an instance killed with SIGKILL (the sample as a process of its own), and PostgreSQL itself
/// stopped and started again. No charge a client saw succeed is lost, none is taken twice, and the balance is always
/// the sum of the rows.
/// </summary>
public sealed class FailureTests(PostgreSqlCluster cluster, ITestOutputHelper output) : IClassFixture<PostgreSqlCluster>
{
    private const string Alice = "alice";
    private const long Initial = 1_000_000_000;
    private const int Clients = 8;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task An_instance_killed_under_load_loses_no_charge_a_client_saw_succeed()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        var arguments = ScaleOutHosts.Arguments(connectionString, Initial);
        await using var survivor = await DurabilityTests.SampleProcess.StartAsync(arguments, output);
        var victim = await DurabilityTests.SampleProcess.StartAsync(arguments, output);
        var succeeded = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        var failures = new ConcurrentBag<string>();
        try
        {
            using var stop = new CancellationTokenSource();
            using var toVictim = new HttpClient { BaseAddress = victim.BaseAddress, Timeout = Bound };
            using var toSurvivor = new HttpClient { BaseAddress = survivor.BaseAddress, Timeout = Bound };
            var load = Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
            {
                var client = c % 2 == 0 ? toVictim : toSurvivor;
                for (var n = 0; !stop.IsCancellationRequested && n < 100_000; n++)
                {
                    var requestId = $"kill-{c}-{n}";
                    try
                    {
                        var (status, body, response) = await ScaleOutHosts.CallAsync(client, CreditCalls.Add(1), requestId, cancellationToken: stop.Token);
                        using (response)
                        {
                            if (ScaleOutHosts.Added(status, body))
                            {
                                succeeded[requestId] = long.Parse(CreditCalls.Header(response, CreditCalls.BalanceHeader)!, CultureInfo.InvariantCulture);
                            }
                            else
                            {
                                failures.Add($"{requestId}: {(int)status} {body}");
                            }
                        }
                    }
                    catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
                    {
                        if (client == toVictim)
                        {
                            return; // killed under this call: its outcome is unknown to the client
                        }

                        if (!stop.IsCancellationRequested)
                        {
                            failures.Add($"{requestId}: {ex.Message}");
                        }

                        return;
                    }
                }
            })).ToList();

            await WaitForAsync(() => succeeded.Count >= 200, "200 successes before the kill");
            victim.Kill();
            var atKill = succeeded.Count;
            await WaitForAsync(() => succeeded.Count >= atKill + 100, "100 more successes on the survivor after the kill");
            await stop.CancelAsync();
            await Task.WhenAll(load).WaitAsync(Bound);
            output.WriteLine($"{atKill} successes when the kill was sent, {succeeded.Count} in all");
        }
        finally
        {
            await victim.DisposeAsync();
        }

        Assert.Empty(failures);
        var rows = await ScaleOutHosts.RowsAsync(connectionString, Alice);
        var usage = rows.Where(r => r.Kind == "Usage").ToDictionary(r => r.RequestId!, StringComparer.Ordinal);
        Assert.All(succeeded.Keys, id => Assert.True(usage.ContainsKey(id), $"{id} succeeded but has no usage row"));
        Assert.All(succeeded, s => Assert.Equal(s.Value, usage[s.Key].BalanceAfter));
        // Refunds only for calls no client saw succeed (a call cancelled by its client when the load stopped).
        Assert.DoesNotContain(rows, r => r.Kind == "Refund" && succeeded.ContainsKey(r.RequestId!));
        await ScaleOutHosts.AssertLedgerAsync(connectionString, Alice);
    }

    [Fact]
    public async Task PostgreSQL_stopped_and_started_under_load_answers_503_for_priced_calls_keeps_free_calls_and_settles_every_unknown_charge()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        var hosts = await ScaleOutHosts.StartAsync(connectionString, Initial, 2, storeTimeout: "00:00:02");
        var served = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        var unavailable = new ConcurrentBag<(string RequestId, string Body, string? RetryAfter)>();
        var other = new ConcurrentBag<string>();
        var servedAfterRestart = 0;
        var restarted = false;
        try
        {
            using var stop = new CancellationTokenSource();
            var load = Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
            {
                for (var n = 0; !stop.IsCancellationRequested && n < 100_000; n++)
                {
                    var requestId = $"pg-{c}-{n}";
                    var (status, body, response) = await ScaleOutHosts.CallAsync(hosts[c % 2].Client, CreditCalls.Add(1), requestId);
                    using (response)
                    {
                        if (ScaleOutHosts.Added(status, body))
                        {
                            served[requestId] = long.Parse(CreditCalls.Header(response, CreditCalls.BalanceHeader)!, CultureInfo.InvariantCulture);
                            if (Volatile.Read(ref restarted))
                            {
                                Interlocked.Increment(ref servedAfterRestart);
                            }
                        }
                        else if (status == HttpStatusCode.ServiceUnavailable)
                        {
                            unavailable.Add((requestId, body, response.Headers.TryGetValues("Retry-After", out var values) ? values.Single() : null));
                            await Task.Delay(10);
                        }
                        else
                        {
                            other.Add($"{requestId}: {(int)status} {body}");
                        }
                    }
                }
            })).ToList();

            await WaitForAsync(() => served.Count >= 200, "200 successes before PostgreSQL stops");
            await cluster.StopAsync();
            var stoppedAt = served.Count;
            await WaitForAsync(() => unavailable.Count >= 50, "50 ledger_unavailable answers while PostgreSQL is down");

            // Free calls need no store: they keep working on both instances.
            foreach (var host in hosts)
            {
                var (status, body, response) = await ScaleOutHosts.CallAsync(host.Client, CreditCalls.ToolCall(1, "echo", """{"message":"still here"}"""), $"free-{Guid.NewGuid():N}");
                response.Dispose();
                Assert.True(status == HttpStatusCode.OK && body.Contains("still here", StringComparison.Ordinal), $"{(int)status} {body}");
            }

            // The health check says so.
            using (var health = await hosts[0].Client.GetAsync("/health"))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
            }

            await cluster.StartAsync();
            Volatile.Write(ref restarted, true);
            await WaitForAsync(() => Volatile.Read(ref servedAfterRestart) >= 100, "100 successes after PostgreSQL is back");
            await stop.CancelAsync();
            await Task.WhenAll(load).WaitAsync(Bound);
            using (var health = await hosts[1].Client.GetAsync("/health"))
            {
                Assert.Equal(HttpStatusCode.OK, health.StatusCode);
            }

            output.WriteLine($"{stoppedAt} served before the stop, {served.Count} in all ({servedAfterRestart} after the restart), {unavailable.Count} answered 503");

            // Charges whose outcome the instance could not know are refunded once PostgreSQL answers again.
            var expected = Initial - (served.Count * ScaleOutHosts.AddPrice);
            var watch = Stopwatch.StartNew();
            while (await ScaleOutHosts.BalanceAsync(connectionString, Alice) != expected && watch.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(100);
            }

            var (first, firstBody, firstRetry) = unavailable.First();
            output.WriteLine($"503 body: {firstBody} (Retry-After: {firstRetry})");
            Assert.Empty(other);
            Assert.All(unavailable, u => Assert.Equal(
                $$$$"""{"jsonrpc":"2.0","id":1,"error":{"code":-31305,"message":"Ledger unavailable: nothing was charged; retry after 1 s.","data":{"reason":"ledger_unavailable","request_id":"{{{{u.RequestId}}}}","retry_after":1}}}""",
                u.Body));
            Assert.All(unavailable, u => Assert.Equal("1", u.RetryAfter));
            Assert.Equal(expected, await ScaleOutHosts.BalanceAsync(connectionString, Alice));
            var rows = await ScaleOutHosts.RowsAsync(connectionString, Alice);
            var usage = rows.Where(r => r.Kind == "Usage").ToDictionary(r => r.RequestId!, StringComparer.Ordinal);
            var refunded = rows.Where(r => r.Kind == "Refund").Select(r => r.RequestId!).ToHashSet(StringComparer.Ordinal);
            Assert.All(served, s => Assert.True(usage.ContainsKey(s.Key) && !refunded.Contains(s.Key), $"{s.Key} was served but is not charged"));
            Assert.All(served, s => Assert.Equal(s.Value, usage[s.Key].BalanceAfter));
            // Every other charge (a 503 whose charge landed) is refunded.
            Assert.All(usage.Keys.Where(id => !served.ContainsKey(id)), id => Assert.Contains(id, refunded));
            await ScaleOutHosts.AssertLedgerAsync(connectionString, Alice);
            output.WriteLine($"{usage.Count - served.Count} charges of unknown outcome landed and were refunded");
        }
        finally
        {
            await cluster.StartAsync().ContinueWith(_ => { }, TaskScheduler.Default);
            await ScaleOutHosts.DisposeAsync(hosts);
        }
    }

    private static async Task WaitForAsync(Func<bool> condition, string what)
    {
        var watch = Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(watch.Elapsed < Bound, $"timed out waiting for {what}");
            await Task.Delay(20);
        }
    }
}
