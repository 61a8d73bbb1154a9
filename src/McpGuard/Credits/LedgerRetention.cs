using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace McpGuard.Credits;

/// <summary>
/// Rolls ledger rows older than <c>McpGuard:Credits:RetentionDays</c> into daily totals: when the host starts, every hour
/// while a retention is set, and after each configuration reload (the setting is read each time). Only McpGuard's own
/// ledger; a store the app registers keeps its own history. A failed pass is logged and tried again an hour later; it
/// never stops the app.
/// </summary>
internal sealed partial class LedgerRetention(
    McpGuardStateProvider states,
    IServiceProvider services,
    TimeProvider clock,
    ILogger<LedgerRetention> logger) : BackgroundService
{
    /// <summary>Row ids per commit: small enough that a roll-up holds the writer about as long as a busy group commit.</summary>
    internal const int Chunk = 2_000;

    internal static readonly TimeSpan Period = TimeSpan.FromHours(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            // Read before the pass: a reload during it wakes the wait below.
            var reloaded = states.GetReloadToken();
            var retaining = states.Current.Options.Credits.RetentionDays is not null;
            await RunOnceAsync(stoppingToken);
            try
            {
                // Hourly while a retention is set; otherwise no timer at all, only a wait for the next reload.
                await WaitAsync(retaining ? Period : null, reloaded, stoppingToken);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task WaitAsync(TimeSpan? period, Microsoft.Extensions.Primitives.IChangeToken reloaded, CancellationToken stoppingToken)
    {
        var woken = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var onReload = reloaded.RegisterChangeCallback(static state => ((TaskCompletionSource)state!).TrySetResult(), woken);
        if (period is { } delay)
        {
            using var timer = clock.CreateTimer(static state => ((TaskCompletionSource)state!).TrySetResult(), woken, delay, Timeout.InfiniteTimeSpan);
            await woken.Task.WaitAsync(stoppingToken);
        }
        else
        {
            await woken.Task.WaitAsync(stoppingToken);
        }
    }

    private bool _warnedNotEmbedded;

    /// <summary>One pass: rolls up what is older than the retention, if one is set. Returns how many rows went.</summary>
    internal async Task<long> RunOnceAsync(CancellationToken cancellationToken)
    {
        var credits = states.Current.Options.Credits;
        if (!credits.Enabled || credits.RetentionDays is not int days)
        {
            return 0;
        }

        if (services.GetService<IMcpGuardLedgerStore>() is not LedgerEngine engine)
        {
            if (!_warnedNotEmbedded)
            {
                // Said once: PostgreSQL (or a store of the app's own) keeps its rows as they are.
                _warnedNotEmbedded = true;
                Log.RetentionNotApplied(logger, days);
            }

            return 0;
        }

        var cutoff = clock.GetUtcNow().AddDays(-days);
        try
        {
            var rolled = await engine.RollUpAsync(cutoff, Chunk, cancellationToken);
            if (rolled > 0)
            {
                Log.RolledUp(logger, rolled, cutoff.UtcDateTime.ToString("O", CultureInfo.InvariantCulture), days);
            }

            return rolled;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return 0;
        }
        catch (Exception ex)
        {
            Log.Failed(logger, ex, Period.TotalMinutes);
            return 0;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(6203, LogLevel.Warning, "Credits:RetentionDays ({Days}) applies to McpGuard's SQLite ledger only; this ledger's store keeps its rows as they are.", EventName = "RetentionNotApplied")]
        public static partial void RetentionNotApplied(ILogger logger, int days);

        [LoggerMessage(6201, LogLevel.Information, "Rolled {Rows} ledger rows written before {Cutoff} (retention {Days} days) into daily totals.", EventName = "LedgerRolledUp")]
        public static partial void RolledUp(ILogger logger, long rows, string cutoff, int days);

        [LoggerMessage(6202, LogLevel.Error, "Rolling old ledger rows into daily totals failed; trying again in {Minutes} minutes.", EventName = "LedgerRollUpFailed")]
        public static partial void Failed(ILogger logger, Exception exception, double minutes);
    }
}
