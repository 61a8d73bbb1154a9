using System.Net;
using McpGuard.Tests.Infrastructure;
using Xunit.Abstractions;

namespace McpGuard.Tests.Credits;

/// <summary>
/// A metered call's reservation outlives its process: the sample is killed (SIGKILL) while a metered call runs, and the
/// sample started again on the same ledger releases the hold once it is older than the upstream timeout (plus twice the
/// store timeout and the clock slack), leaving no reservation held and the balance whole.
/// </summary>
public sealed class ReservationCrashTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Kill_9_during_a_metered_call_leaves_no_reservation_held_after_the_restart()
    {
        var path = LedgerFile.NewPath();
        string[] arguments =
        [
            $"--McpGuard:SqlitePath={path}",
            // slow, metered instead of its flat 100 (an empty value takes the sample's flat price away).
            "--McpGuard:Tools:slow:Price=",
            "--McpGuard:Tools:slow:Price:PerUnitMicro=1",
            "--McpGuard:Tools:slow:Price:MaxMicro=300",
            "--McpGuard:Credits:UpstreamTimeout=00:00:02",
            "--McpGuard:StoreTimeout=00:00:01",
        ];
        try
        {
            await using (var first = await DurabilityTests.SampleProcess.StartAsync(arguments, output))
            {
                using var client = new HttpClient { BaseAddress = first.BaseAddress, Timeout = Bound };
                using var request = CreditCalls.Post(CreditCalls.ToolCall(1, "slow", """{"ms":60000}"""), DemoKeys.Alice, "metered-killed");
                var call = client.SendAsync(request);

                // The hold is durable before the tool runs: wait for its row, then kill the process under the call.
                await WaitUntilAsync(() => LedgerFile.Rows(path, "alice").Any(r => r.RequestId == "metered-killed"));
                first.Kill();
                await Assert.ThrowsAnyAsync<Exception>(() => call.WaitAsync(Bound));
            }

            Assert.Equal(
                [("Reservation", -300L, 999_700L)],
                LedgerFile.Rows(path, "alice").Where(r => r.RequestId == "metered-killed").Select(r => (r.Kind, r.Amount, r.BalanceAfter)));
            Assert.Equal(1, LedgerFile.Scalar(path, "SELECT COUNT(*) FROM ledger_holds;"));

            await using var second = await DurabilityTests.SampleProcess.StartAsync(arguments, output);
            await WaitUntilAsync(() => LedgerFile.Scalar(path, "SELECT COUNT(*) FROM ledger_holds;") == 0);

            Assert.Equal(
                [("Reservation", -300L, 999_700L), ("Release", 300L, 1_000_000L)],
                LedgerFile.Rows(path, "alice").Where(r => r.RequestId == "metered-killed").Select(r => (r.Kind, r.Amount, r.BalanceAfter)));
            using var after = new HttpClient { BaseAddress = second.BaseAddress, Timeout = Bound };
            using var next = await after.SendAsync(CreditCalls.Post(CreditCalls.Add(2), DemoKeys.Alice, "after-restart"));
            Assert.Equal(HttpStatusCode.OK, next.StatusCode);
            Assert.Equal("999200", CreditCalls.Header(next, CreditCalls.BalanceHeader));
            LedgerFile.AssertBalancesAreRunningSums(LedgerFile.Rows(path, "alice"));
        }
        finally
        {
            LedgerFile.Delete(path);
        }
    }

    /// <summary>Polls (real time: the processes run on their own clocks) until the condition holds, failing after <see cref="Bound"/>.</summary>
    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition did not hold in time");
            await Task.Delay(100);
        }
    }
}
