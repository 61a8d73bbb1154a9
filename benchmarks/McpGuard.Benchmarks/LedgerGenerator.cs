using System.Diagnostics;
using System.Globalization;
using McpGuard.Credits;
using McpGuard.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace McpGuard.Benchmarks;

/// <summary>
/// Writes a large SQLite ledger for restart measurements (<c>benchmarks/soak.sh --restart-only</c>):
/// <c>generate-ledger &lt;path&gt; &lt;rows&gt; [accounts]</c>. The file is new and written by the ledger engine and
/// the SQLite journal the server uses, so it holds exactly what a server would have written: a top-up for each account
/// (<c>alice</c>, <c>bob</c>, <c>acct-0</c>…), then charges of 800 µ on random accounts with the guard's own request
/// ids, every hundredth refunded, from 32 concurrent callers so group commit batches them as it does under load.
/// </summary>
internal static class LedgerGenerator
{
    private const long Price = 800;
    private const long Balance = 1_000_000_000_000;
    private const int Callers = 32;
    private const int RefundEvery = 100;

    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length is < 3 or > 4
            || !long.TryParse(args[2], NumberStyles.None, CultureInfo.InvariantCulture, out var rows)
            || !TryAccounts(args, out var accountCount))
        {
            Console.Error.WriteLine("usage: generate-ledger <path> <rows> [accounts]   (rows >= accounts >= 2; 1000 accounts by default)");
            return 2;
        }

        var path = Path.GetFullPath(args[1]);
        if (File.Exists(path) || Directory.Exists(path))
        {
            Console.Error.WriteLine($"{path} exists; generate-ledger writes a new ledger only.");
            return 1;
        }

        if (rows < accountCount)
        {
            Console.Error.WriteLine($"{rows} rows cannot hold the top-ups of {accountCount} accounts.");
            return 2;
        }

        string[] accounts = ["alice", "bob", .. Enumerable.Range(0, accountCount - 2).Select(i => string.Create(CultureInfo.InvariantCulture, $"acct-{i}"))];
        var charges = ChargesFor(rows - accountCount);
        var engine = new LedgerEngine(new SqliteJournal(new SqliteDatabase(path)), TimeProvider.System, NullLogger.Instance);
        try
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"generating {path}: {rows:N0} rows = {accountCount:N0} top-ups + {charges:N0} charges of {Price} µ + {rows - accountCount - charges:N0} refunds, {Callers} callers"));
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(accounts.Select(a => engine.TopUpAsync(a, Balance, "generate-ledger", TimeProvider.System.GetUtcNow(), CancellationToken.None).AsTask()));

            var progress = new Progress(rows, accountCount, clock);
            long next = 0;
            var callers = new Task[Callers];
            for (var c = 0; c < Callers; c++)
            {
                callers[c] = Task.Run(async () =>
                {
                    long k;
                    while ((k = Interlocked.Increment(ref next)) <= charges)
                    {
                        var id = McpGuard.Protocol.RequestIds.NewId();
                        var account = accounts[Random.Shared.Next(accounts.Length)];
                        var result = await engine.ChargeAsync(new McpGuardChargeRequest(account, id, "add", Price, 0, TimeProvider.System.GetUtcNow(), newRequestId: true), CancellationToken.None);
                        if (result.Outcome != McpGuardChargeOutcome.Charged)
                        {
                            throw new InvalidOperationException($"Charge {id} on {account} was {result.Outcome}.");
                        }

                        var written = 1;
                        if (Refunded(k, rows - accountCount))
                        {
                            if (!await engine.RefundAsync(id, TimeProvider.System.GetUtcNow(), CancellationToken.None))
                            {
                                throw new InvalidOperationException($"Refund {id} found nothing to refund.");
                            }

                            written = 2;
                        }

                        progress.Add(written);
                    }
                });
            }

            await Task.WhenAll(callers);
            var seconds = clock.Elapsed.TotalSeconds;
            using var process = Process.GetCurrentProcess();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"done: {progress.Rows:N0} rows in {seconds:F1} s, {progress.Rows / seconds:N0} rows/s; peak RSS {process.PeakWorkingSet64 / 1048576.0:F0} MB"));
            return progress.Rows == rows ? 0 : 1;
        }
        catch (InvalidOperationException ex)
        {
            Console.Error.WriteLine($"generate-ledger failed: {ex.Message}");
            return 1;
        }
        finally
        {
            await engine.DisposeAsync();
        }
    }

    private static bool TryAccounts(string[] args, out int accounts)
    {
        accounts = 1000;
        return args.Length < 4 || (int.TryParse(args[3], NumberStyles.None, CultureInfo.InvariantCulture, out accounts) && accounts >= 2);
    }

    /// <summary>Rows after charge <paramref name="k"/> (1-based) when every hundredth charge is refunded.</summary>
    private static long RowsAfter(long k) => k + (k / RefundEvery);

    /// <summary>The fewest charges that fill <paramref name="target"/> rows with their refunds.</summary>
    private static long ChargesFor(long target)
    {
        var charges = target * RefundEvery / (RefundEvery + 1);
        while (RowsAfter(charges) < target)
        {
            charges++;
        }

        return charges;
    }

    /// <summary>Every hundredth charge is refunded, except a last one whose refund would pass the row count.</summary>
    private static bool Refunded(long k, long target) => k % RefundEvery == 0 && RowsAfter(k) <= target;

    /// <summary>Counts rows written and prints a line each time another tenth of the total is done.</summary>
    private sealed class Progress(long total, long written, Stopwatch clock)
    {
        private long _rows = written;

        public long Rows => Interlocked.Read(ref _rows);

        public void Add(int rows)
        {
            var now = Interlocked.Add(ref _rows, rows);
            var before = now - rows;
            if (now * 10 / total > before * 10 / total)
            {
                var seconds = clock.Elapsed.TotalSeconds;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  {now * 100 / total,3}%  {now,12:N0} rows  {seconds,7:F1} s  {now / seconds,9:N0} rows/s"));
            }
        }
    }
}
