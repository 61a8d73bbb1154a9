using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using McpGuard.Tests.Infrastructure;
using Xunit.Abstractions;

namespace McpGuard.Tests.Credits;

/// <summary>
/// The ledger survives the process being killed mid-load: the real sample runs as a separate process on a
/// SQLite file, several clients call <c>add</c> as alice, the process gets SIGKILL while they do, and a
/// restarted process on the same file must hold a usage row for every call a client saw succeed.
/// </summary>
public sealed partial class DurabilityTests(ITestOutputHelper output)
{
    private const int Clients = 8;
    private const int EnoughSuccesses = 100;
    private static readonly TimeSpan LoadBeforeKill = TimeSpan.FromSeconds(1.5);
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Every_call_a_client_saw_succeed_is_in_the_ledger_after_a_SIGKILL()
    {
        var path = LedgerFile.NewPath();
        string[] arguments =
        [
            $"--McpGuard:SqlitePath={path}",
            // Enough balance and cap for any number of calls, and no rate limit in the way.
            "--McpGuard:Accounts:alice:InitialBalance=1000000000000",
            "--McpGuard:Accounts:alice:MonthlyCap=1000000000000",
            "--McpGuard:RateLimits:Policies:default:Windows:0:Permits=100000000",
            "--McpGuard:RateLimits:Policies:default:Windows:1:Permits=100000000",
            "--McpGuard:RateLimits:Policies:add:Windows:0:Permits=100000000",
        ];
        try
        {
            await RunAsync(path, arguments);
        }
        finally
        {
            LedgerFile.Delete(path);
        }
    }

    private async Task RunAsync(string path, string[] arguments)
    {
        var succeeded = new ConcurrentDictionary<string, long>(StringComparer.Ordinal);
        var attempted = new ConcurrentDictionary<string, byte>(StringComparer.Ordinal);
        var failures = new ConcurrentBag<string>();
        var enough = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int killedAfter;

        await using (var first = await SampleProcess.StartAsync(arguments, output))
        {
            using var stop = new CancellationTokenSource();
            using var client = new HttpClient { BaseAddress = first.BaseAddress, Timeout = Bound };
            var load = Enumerable.Range(0, Clients).Select(c => Task.Run(async () =>
            {
                for (var n = 0; !stop.IsCancellationRequested && n < 1_000_000; n++)
                {
                    var requestId = $"dur-{c}-{n}";
                    attempted[requestId] = 0;
                    try
                    {
                        using var request = CreditCalls.Post(CreditCalls.Add(n), DemoKeys.Alice, requestId);
                        using var response = await client.SendAsync(request, stop.Token);
                        var body = await response.Content.ReadAsStringAsync(stop.Token);
                        if (response.StatusCode == HttpStatusCode.OK && body.Contains("\"text\":\"5\"", StringComparison.Ordinal))
                        {
                            succeeded[requestId] = long.Parse(CreditCalls.Header(response, CreditCalls.BalanceHeader)!, CultureInfo.InvariantCulture);
                            if (succeeded.Count >= EnoughSuccesses)
                            {
                                enough.TrySetResult();
                            }
                        }
                        else
                        {
                            failures.Add($"{requestId}: {(int)response.StatusCode} {body}");
                        }
                    }
                    catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
                    {
                        // The process was killed under this call (or the test is stopping): its outcome is unknown to the client.
                        return;
                    }
                }
            })).ToList();

            // Real time on purpose: the load runs for a while (and until enough calls went through, however busy the
            // machine) before the kill lands in the middle of it.
            var ready = Task.WhenAll(Task.Delay(LoadBeforeKill), enough.Task);
            await Task.WhenAny(Task.WhenAny(load), ready).WaitAsync(Bound);
            Assert.True(load.All(t => !t.IsCompleted), $"a client stopped before the kill: {string.Join("; ", failures.Take(3))}");
            killedAfter = succeeded.Count;
            first.Kill();
            await stop.CancelAsync();
            await Task.WhenAll(load).WaitAsync(Bound);
        }

        Assert.Empty(failures);
        Assert.True(killedAfter >= EnoughSuccesses, $"only {killedAfter} calls succeeded before the kill");

        await using var second = await SampleProcess.StartAsync(arguments, output);
        using var after = new HttpClient { BaseAddress = second.BaseAddress, Timeout = Bound };
        using var request2 = CreditCalls.Post(CreditCalls.Add(1), DemoKeys.Alice, "after-restart");
        using var afterRestart = await after.SendAsync(request2);
        var afterBody = await afterRestart.Content.ReadAsStringAsync();
        Assert.True(afterRestart.StatusCode == HttpStatusCode.OK, afterBody);
        var balanceAfterRestart = long.Parse(CreditCalls.Header(afterRestart, CreditCalls.BalanceHeader)!, CultureInfo.InvariantCulture);

        var rows = LedgerFile.Rows(path, "alice");
        var usage = rows.Where(r => r.Kind == "Usage").ToDictionary(r => r.RequestId!, StringComparer.Ordinal);
        var missing = succeeded.Keys.Where(id => !usage.ContainsKey(id)).ToList();
        var inFlight = usage.Keys.Where(id => id != "after-restart" && !succeeded.ContainsKey(id)).ToList();
        output.WriteLine($"{attempted.Count} calls attempted, {killedAfter} had succeeded when the kill was sent, {succeeded.Count} succeeded in all; "
            + $"{usage.Count - 1} usage rows before the restart, {inFlight.Count} of them for calls whose answer the kill swallowed; {missing.Count} successes missing.");

        Assert.Empty(missing);
        // Each success's answer matches its durable row.
        Assert.All(succeeded, s => Assert.Equal(s.Value, usage[s.Key].BalanceAfter));
        // Rows only for calls a client sent, at most one per request id and kind, and the one seed.
        Assert.All(usage.Keys, id => Assert.True(id == "after-restart" || attempted.ContainsKey(id), id));
        Assert.All(rows.Where(r => r.RequestId is not null).GroupBy(r => (r.RequestId, r.Kind)), g => Assert.Single(g));
        Assert.Equal(rows.Count(r => r.Kind == "Usage"), usage.Count);
        var seed = Assert.Single(rows, r => r.Kind == "TopUp");
        Assert.Equal(("seed", 1_000_000_000_000L), (seed.Note, seed.Amount));
        Assert.DoesNotContain(rows, r => r.Kind is "Refund" or "Adjustment");
        Assert.All(usage.Values, r => Assert.Equal(-800, r.Amount));
        // The restarted server's balance is the sum of the rows, and the rows chain.
        Assert.Equal(rows.Sum(r => r.Amount), balanceAfterRestart);
        Assert.Equal(usage["after-restart"].BalanceAfter, balanceAfterRestart);
        Assert.Equal(rows.Max(r => r.Id), usage["after-restart"].Id);
        LedgerFile.AssertBalancesAreRunningSums(rows);
    }

    /// <summary>The sample's own build output run with <c>dotnet McpGuard.Sample.dll</c>, on a port it picks itself.</summary>
    internal sealed partial class SampleProcess : IAsyncDisposable
    {
        private readonly Process _process;

        private SampleProcess(Process process, Uri baseAddress)
        {
            _process = process;
            BaseAddress = baseAddress;
        }

        public Uri BaseAddress { get; }

        public static async Task<SampleProcess> StartAsync(IEnumerable<string> arguments, ITestOutputHelper output)
        {
            var dll = Path.Combine(AppContext.BaseDirectory, "McpGuard.Sample.dll");
            Assert.True(File.Exists(dll), $"{dll} is missing.");
            var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = AppContext.BaseDirectory,
            };
            start.ArgumentList.Add(dll);
            start.ArgumentList.Add("--urls");
            start.ArgumentList.Add("http://127.0.0.1:0");
            foreach (var argument in arguments)
            {
                start.ArgumentList.Add(argument);
            }

            start.Environment["DOTNET_ENVIRONMENT"] = "Production";
            start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
            var listening = new TaskCompletionSource<Uri>(TaskCreationOptions.RunContinuationsAsynchronously);
            var log = new StringBuilder();
            var process = new Process { StartInfo = start, EnableRaisingEvents = true };
            process.OutputDataReceived += (_, e) => OnLine(e.Data);
            process.ErrorDataReceived += (_, e) => OnLine(e.Data);
            process.Exited += (_, _) => listening.TrySetException(new InvalidOperationException($"The sample exited with {process.ExitCode} before listening:\n{Snapshot()}"));
            Assert.True(process.Start());
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var sample = (SampleProcess?)null;
            try
            {
                var address = await listening.Task.WaitAsync(Bound);
                sample = new SampleProcess(process, address);
                output.WriteLine($"sample process {process.Id} listening on {address}");
                return sample;
            }
            finally
            {
                if (sample is null)
                {
                    KillAndWait(process);
                    process.Dispose();
                }
            }

            void OnLine(string? line)
            {
                if (line is null)
                {
                    return;
                }

                lock (log)
                {
                    log.AppendLine(line);
                }

                if (ListeningOn().Match(line) is { Success: true } match)
                {
                    listening.TrySetResult(new Uri(match.Groups[1].Value));
                }
            }

            string Snapshot()
            {
                lock (log)
                {
                    return log.ToString();
                }
            }
        }

        /// <summary>SIGKILL on Linux: no shutdown, no flush, no checkpoint.</summary>
        public void Kill() => KillAndWait(_process);

        public ValueTask DisposeAsync()
        {
            KillAndWait(_process);
            _process.Dispose();
            return ValueTask.CompletedTask;
        }

        private static void KillAndWait(Process process)
        {
            try
            {
                if (!process.HasExited)
                {
                    process.Kill();
                }
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }

            Assert.True(process.WaitForExit(TimeSpan.FromSeconds(30)), "the sample process did not exit after SIGKILL");
        }

        [GeneratedRegex(@"Now listening on: (http://127\.0\.0\.1:\d+)")]
        private static partial Regex ListeningOn();
    }
}
