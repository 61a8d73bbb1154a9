using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace McpGuard.Credits;

/// <summary>
/// Releases the reservations of metered calls nobody will settle: those whose instance died (killed, crashed) between the
/// hold and its capture. A hold is placed at the time of its call, before the charge reaches the store (up to the store
/// timeout); the call then runs for at most the upstream timeout, and its capture or release gets the store timeout
/// again. So a hold older than <see cref="Age"/> (those, plus <see cref="ClockSlack"/> for instances whose clocks differ)
/// cannot belong to a call still running, and is released: at start, then every half upstream timeout (between 1 and 30
/// s) while a tool is metered. A failed pass is logged and tried again at the next; it never stops the app.
/// </summary>
internal sealed partial class ReservationSweep(
    McpGuardStateProvider states,
    IServiceProvider services,
    TimeProvider clock,
    ILogger<ReservationSweep> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            // Read before the pass: a reload during it wakes the wait below.
            var reloaded = states.GetReloadToken();
            await RunOnceAsync(stoppingToken);
            var credits = states.Current.Credits;
            try
            {
                if (credits.Enabled && credits.Meters.Count > 0)
                {
                    var period = TimeSpan.FromTicks(Math.Clamp(credits.UpstreamTimeout.Ticks / 2, TimeSpan.TicksPerSecond, 30 * TimeSpan.TicksPerSecond));
                    await Task.Delay(period, clock, stoppingToken);
                }
                else
                {
                    // No metered tool, so no new hold: no timer, only a wait for a reload that may add one. (The pass at
                    // start released what an earlier configuration's calls left.)
                    var woken = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    using var onReload = reloaded.RegisterChangeCallback(static state => ((TaskCompletionSource)state!).TrySetResult(), woken);
                    await woken.Task.WaitAsync(stoppingToken);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    /// <summary>How far two instances' clocks may differ and still agree on which holds have expired.</summary>
    internal static readonly TimeSpan ClockSlack = TimeSpan.FromSeconds(5);

    /// <summary>The age past which no running call can own a hold.</summary>
    internal static TimeSpan Age(McpGuardState state) => state.Credits.UpstreamTimeout + (2 * state.Options.StoreTimeout) + ClockSlack;

    /// <summary>One pass; returns how many holds it released. It runs with credits off too: holds left from before still go.</summary>
    internal async Task<int> RunOnceAsync(CancellationToken cancellationToken)
    {
        var state = states.Current;
        if (services.GetService<IMcpGuardLedgerStore>() is not { } ledger)
        {
            return 0;
        }

        var now = clock.GetUtcNow();
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(state.Options.StoreTimeout);
            var released = await ledger.ReleaseReservationsAsync(now - Age(state), now, timeout.Token);
            if (released > 0)
            {
                Log.Released(logger, released);
            }

            return released;
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            Log.Failed(logger, ex);
            return 0;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(6110, LogLevel.Warning, "Released {Count} reservation(s) of metered calls that were never settled (their instance stopped before the call ended).", EventName = "ReservationsReleased")]
        public static partial void Released(ILogger logger, int count);

        [LoggerMessage(6111, LogLevel.Error, "Releasing expired reservations failed; the next pass tries again.", EventName = "ReservationSweepFailed")]
        public static partial void Failed(ILogger logger, Exception exception);
    }
}
