using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using McpGuard.PostgreSql;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace McpGuard.Tests.ScaleOut.PostgreSql;

/// <summary>
/// Three instances of the sample on one PostgreSQL database: no overdraft across them, refunds mixed in, changes to
/// keys, suspensions and tool statuses reaching every instance within a second (a missed notification too), and a
/// migration run once when instances start together.
/// </summary>
public sealed class SharedLedgerTests(PostgreSqlCluster cluster, ITestOutputHelper output) : IClassFixture<PostgreSqlCluster>
{
    private const string Alice = "alice";
    private const int Calls = 1_000;

    [Fact]
    public async Task A_thousand_parallel_calls_on_three_instances_spend_a_balance_for_exactly_100()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        var hosts = await ScaleOutHosts.StartAsync(connectionString, 100 * ScaleOutHosts.AddPrice, 3);
        try
        {
            var results = new ConcurrentBag<(string RequestId, HttpStatusCode Status, string Body)>();
            var watch = Stopwatch.StartNew();
            using var go = new ManualResetEventSlim();
            await Task.WhenAll(Enumerable.Range(0, Calls).Select(i => Task.Run(async () =>
            {
                var requestId = $"par-{i}";
                go.Wait();
                var (status, body, response) = await ScaleOutHosts.CallAsync(hosts[i % 3].Client, CreditCalls.Add(1), requestId);
                response.Dispose();
                results.Add((requestId, status, body));
            })).Append(Task.Run(go.Set)));
            output.WriteLine($"{Calls} calls on 3 instances in {watch.ElapsedMilliseconds} ms");

            var served = results.Where(r => ScaleOutHosts.Added(r.Status, r.Body)).ToList();
            var refused = results.Where(r => r.Status == HttpStatusCode.PaymentRequired).ToList();
            Assert.Equal(100, served.Count);
            Assert.Equal(900, refused.Count);
            Assert.All(refused, r => Assert.Equal(
                $$$$"""{"jsonrpc":"2.0","id":1,"error":{"code":-32402,"message":"Insufficient credit","data":{"reason":"out_of_credit","request_id":"{{{{r.RequestId}}}}","balance_micro":0,"price_micro":800,"topup_url":"https://billing.example.com/topup"}}}""",
                r.Body));
            Assert.Equal(0, await ScaleOutHosts.BalanceAsync(connectionString, Alice));
            var rows = await ScaleOutHosts.RowsAsync(connectionString, Alice);
            Assert.Equal(served.Select(s => s.RequestId).Order(), rows.Where(r => r.Kind == "Usage").Select(r => r.RequestId!).Order());
            await ScaleOutHosts.AssertLedgerAsync(connectionString, Alice);
            var store = (PostgreSqlLedgerStore)hosts[0].Services.GetRequiredKeyedService<IMcpGuardLedgerStore>(McpGuard.Storage.McpGuardStores.PostgreSqlKey);
            output.WriteLine($"instance 0: {store.Operations} charges and refunds in {store.Commits} commits");
            Assert.True(store.Commits * 2 <= store.Operations, $"group commit: {store.Operations} operations in {store.Commits} commits");
        }
        finally
        {
            await ScaleOutHosts.DisposeAsync(hosts);
        }
    }

    [Fact]
    public async Task The_same_request_id_sent_to_three_instances_at_once_is_charged_once()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        var hosts = await ScaleOutHosts.StartAsync(connectionString, 1_000_000, 3);
        try
        {
            var results = new ConcurrentBag<(string RequestId, HttpStatusCode Status, string Body)>();
            await Task.WhenAll(Enumerable.Range(0, 30 * 6).Select(i => Task.Run(async () =>
            {
                var requestId = $"same-{i / 6}";
                var (status, body, response) = await ScaleOutHosts.CallAsync(hosts[i % 3].Client, CreditCalls.Add(1), requestId);
                response.Dispose();
                results.Add((requestId, status, body));
            })));

            Assert.All(results.GroupBy(r => r.RequestId), g => Assert.Single(g, r => ScaleOutHosts.Added(r.Status, r.Body)));
            var rows = await ScaleOutHosts.RowsAsync(connectionString, Alice);
            Assert.Equal(30, rows.Count(r => r.Kind == "Usage"));
            Assert.Equal(1_000_000 - (30 * ScaleOutHosts.AddPrice), await ScaleOutHosts.BalanceAsync(connectionString, Alice));
            await ScaleOutHosts.AssertLedgerAsync(connectionString, Alice);
        }
        finally
        {
            await ScaleOutHosts.DisposeAsync(hosts);
        }
    }

    [Fact]
    public async Task Calls_that_fail_and_are_refunded_mixed_in_leave_exactly_100_served_and_every_refund_once()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        var hosts = await ScaleOutHosts.StartAsync(connectionString, 100 * ScaleOutHosts.AddPrice, 3);
        try
        {
            var served = new ConcurrentBag<string>();
            var failed = new ConcurrentBag<string>();

            // Three crashing calls first, one on each instance, while the balance surely covers them: however the parallel
            // calls below are ordered (the adds may take the whole balance before any crashing call is charged), some
            // charges are refunded by settlement.
            for (var n = 0; n < 3; n++)
            {
                var (status, text, response) = await ScaleOutHosts.CallAsync(hosts[n].Client, CreditCalls.ToolCall(1, "fail", """{"kind":"crash"}"""), $"crash-first-{n}");
                response.Dispose();
                Assert.True(status == HttpStatusCode.OK, $"crash-first-{n}: {(int)status} {text}");
                failed.Add($"crash-first-{n}");
            }

            await Parallel.ForEachAsync(Enumerable.Range(0, Calls), new ParallelOptions { MaxDegreeOfParallelism = 96 }, async (i, ct) =>
            {
                // One call in three crashes in the tool: charged, then refunded by settlement.
                var crash = i % 3 == 0;
                var requestId = crash ? $"crash-{i}" : $"add-{i}";
                var body = crash ? CreditCalls.ToolCall(1, "fail", """{"kind":"crash"}""") : CreditCalls.Add(1);
                var (status, text, response) = await ScaleOutHosts.CallAsync(hosts[i % 3].Client, body, requestId, cancellationToken: ct);
                response.Dispose();
                if (ScaleOutHosts.Added(status, text))
                {
                    served.Add(requestId);
                }
                else if (crash && status == HttpStatusCode.OK)
                {
                    failed.Add(requestId);
                }
                else
                {
                    Assert.True(status == HttpStatusCode.PaymentRequired, $"{requestId}: {(int)status} {text}");
                }
            });

            // Refused adds may have met a balance a crashing call held for a moment: spend what is left, one call at a time.
            for (var n = 0; n < 200; n++)
            {
                var (status, text, response) = await ScaleOutHosts.CallAsync(hosts[n % 3].Client, CreditCalls.Add(1), $"rest-{n}");
                response.Dispose();
                if (!ScaleOutHosts.Added(status, text))
                {
                    Assert.Equal(HttpStatusCode.PaymentRequired, status);
                    break;
                }

                served.Add($"rest-{n}");
            }

            output.WriteLine($"{served.Count} adds served, {failed.Count} crashing calls charged and refunded");
            Assert.Equal(100, served.Count);
            Assert.Equal(0, await ScaleOutHosts.BalanceAsync(connectionString, Alice));
            var rows = await ScaleOutHosts.RowsAsync(connectionString, Alice);
            Assert.Equal(served.Order(), rows.Where(r => r.Kind == "Usage" && r.RequestId!.StartsWith("add-", StringComparison.Ordinal) || r.RequestId?.StartsWith("rest-", StringComparison.Ordinal) == true).Select(r => r.RequestId!).Order());
            var crashUsage = rows.Where(r => r.Kind == "Usage" && r.RequestId!.StartsWith("crash-", StringComparison.Ordinal)).Select(r => r.RequestId).Order().ToList();
            var crashRefunds = rows.Where(r => r.Kind == "Refund").Select(r => r.RequestId).Order().ToList();
            Assert.NotEmpty(crashUsage);
            Assert.Equal(crashUsage, crashRefunds);
            Assert.Equal(failed.Order(), crashUsage);
            await ScaleOutHosts.AssertLedgerAsync(connectionString, Alice);
        }
        finally
        {
            await ScaleOutHosts.DisposeAsync(hosts);
        }
    }

    [Fact]
    public async Task A_revoked_key_a_suspension_and_a_paused_tool_reach_the_other_instances_within_a_second_even_when_a_notification_is_missed()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        var hosts = await ScaleOutHosts.StartAsync(connectionString, 1_000_000, 3);
        try
        {
            var (a, others) = (hosts[0], hosts[1..]);

            // A key created on A works on B and C.
            var (key, hash) = McpGuardApiKey.Generate();
            await a.Services.GetRequiredService<IMcpGuardApiKeyStore>().AddAsync(new McpGuardApiKey("runtime-1", "bob", ["tools:basic"]), Convert.FromHexString(hash), default);
            await WithinASecondAsync("key created", others, key, "echo", HttpStatusCode.OK);

            // Revoked on A: refused by B and C.
            Assert.True(await a.Services.GetRequiredService<IMcpGuardApiKeyStore>().RevokeAsync("runtime-1", default));
            await WithinASecondAsync("key revoked", others, key, "echo", HttpStatusCode.Unauthorized);

            // Bob suspended on A, then reactivated.
            await a.Services.GetRequiredService<IMcpGuardAccountStatusStore>().SetSuspendedAsync("bob", true, default);
            await WithinASecondAsync("account suspended", others, DemoKeys.Bob, "echo", HttpStatusCode.Forbidden);
            await a.Services.GetRequiredService<IMcpGuardAccountStatusStore>().SetSuspendedAsync("bob", false, default);
            await WithinASecondAsync("account reactivated", others, DemoKeys.Bob, "echo", HttpStatusCode.OK);

            // echo paused on A, then restored.
            await a.Services.GetRequiredService<IMcpGuardToolStatusStore>().SetStatusAsync("echo", McpGuardToolStatus.Paused, default);
            await WithinASecondAsync("tool paused", others, DemoKeys.Bob, "echo", HttpStatusCode.ServiceUnavailable);
            await a.Services.GetRequiredService<IMcpGuardToolStatusStore>().SetStatusAsync("echo", null, default);
            await WithinASecondAsync("tool restored", others, DemoKeys.Bob, "echo", HttpStatusCode.OK);

            // A change no notification announces (as if it were lost): the poll of the change counter finds it.
            await PostgreSqlCluster.QueryAsync<long>(connectionString, "UPDATE mcpguard.account_status SET suspended = suspended; INSERT INTO mcpguard.account_status VALUES ('bob', true); UPDATE mcpguard.changes SET version = version + 1 RETURNING version;");
            await WithinASecondAsync("suspended without a notification", hosts, DemoKeys.Bob, "echo", HttpStatusCode.Forbidden);

            // The listening connections are cut, and a change is made while they are gone: read again on reconnecting.
            var cut = await PostgreSqlCluster.QueryAsync<bool>(connectionString, $"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '{PostgreSqlDatabase.ListenerName}' AND datname = current_database();");
            Assert.Equal(3, cut.Count(c => c));
            await a.Services.GetRequiredService<IMcpGuardAccountStatusStore>().SetSuspendedAsync("bob", false, default);
            await WithinASecondAsync("reactivated while the listeners were cut", others, DemoKeys.Bob, "echo", HttpStatusCode.OK);
            Assert.All(hosts, h => Assert.True(h.Services.GetRequiredService<PostgreSqlDirectory>().Connects >= 2, "the listener reconnected"));
        }
        finally
        {
            await ScaleOutHosts.DisposeAsync(hosts);
        }
    }

    [Fact]
    public async Task Two_instances_starting_together_on_an_empty_database_migrate_once()
    {
        var connectionString = await cluster.CreateDatabaseAsync();
        var starting = Enumerable.Range(0, 2).Select(_ => Task.Run(() => GuardedHost.StartSampleAsync(ScaleOutHosts.Configuration(connectionString, 5_000)))).ToList();
        var hosts = await Task.WhenAll(starting);
        try
        {
            var versions = await PostgreSqlCluster.QueryAsync<int>(connectionString, "SELECT version FROM mcpguard.schema_version ORDER BY version;");
            Assert.Equal(Enumerable.Range(1, McpGuard.PostgreSql.PostgreSqlSchema.Migrations.Length), versions);
            // Seeded once too: one seed row for alice, whichever instance wrote it.
            var rows = await ScaleOutHosts.RowsAsync(connectionString, Alice);
            Assert.Equal([("TopUp", 5_000L)], rows.Select(r => (r.Kind, r.Amount)));
            foreach (var host in hosts)
            {
                var (status, body, response) = await ScaleOutHosts.CallAsync(host.Client, CreditCalls.Add(1), $"after-start-{Guid.NewGuid():N}");
                response.Dispose();
                Assert.True(ScaleOutHosts.Added(status, body), body);
            }

            Assert.Equal(5_000 - (2 * ScaleOutHosts.AddPrice), await ScaleOutHosts.BalanceAsync(connectionString, Alice));
        }
        finally
        {
            await ScaleOutHosts.DisposeAsync(hosts);
        }
    }

    /// <summary>Asks every host until each answers <paramref name="expected"/>; fails when one still does not after a second.</summary>
    private async Task WithinASecondAsync(string what, IEnumerable<GuardedHost> hosts, string apiKey, string tool, HttpStatusCode expected)
    {
        var watch = Stopwatch.StartNew();
        foreach (var host in hosts)
        {
            while (true)
            {
                var (status, body, response) = await ScaleOutHosts.CallAsync(host.Client, CreditCalls.ToolCall(1, tool, """{"message":"hi"}"""), $"prop-{Guid.NewGuid():N}", apiKey);
                response.Dispose();
                if (status == expected)
                {
                    break;
                }

                Assert.True(watch.Elapsed < TimeSpan.FromSeconds(1), $"{what}: {host.BaseAddress} still answers {(int)status} {body} after {watch.ElapsedMilliseconds} ms");
                await Task.Delay(20);
            }
        }

        output.WriteLine($"{what}: every instance within {watch.ElapsedMilliseconds} ms");
    }
}
