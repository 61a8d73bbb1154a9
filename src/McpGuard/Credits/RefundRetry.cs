using Microsoft.Extensions.Logging;

namespace McpGuard.Credits;

/// <summary>
/// Refunds that must happen even when the ledger cannot answer at the time: a call the server did not serve whose
/// refund failed, and a charge whose outcome is unknown because the ledger failed or timed out while charging it (the
/// call was refused with <c>ledger_unavailable</c>, so it must not stand even if it landed). Each is tried at once and,
/// while the ledger fails, again with growing pauses. A refund the ledger answers <c>false</c> for (nothing charged)
/// is asked again for <see cref="LateChargeWindow"/> when the charge's outcome is unknown, since a charge sent before
/// the failure may still land; refunds are idempotent, so asking again is safe. Pending refunds live in this process:
/// a stop with refunds pending logs each one (event 6105) for an operator to credit back.
/// </summary>
internal sealed partial class RefundRetry(IMcpGuardLedgerStore ledger, TimeProvider clock, McpGuardStateProvider states, McpGuard.Telemetry.McpGuardTelemetry telemetry, ILogger<RefundRetry> logger) : IDisposable
{
    /// <summary>
    /// How long a charge of unknown outcome is watched for: longer than any store call can take to land (a charge taken
    /// just before its caller gave up may run for one more <c>StoreTimeout</c>), and at least a minute.
    /// </summary>
    internal TimeSpan LateChargeWindow => TimeSpan.FromTicks(Math.Max(TimeSpan.FromSeconds(60).Ticks, 4 * states.Current.Options.StoreTimeout.Ticks));

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Pending> _pending = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private Task? _loop;

    /// <summary>Whether the ledger is McpGuard's embedded engine, which answers from memory and needs no timeout.</summary>
    private bool Embedded => ledger is LedgerEngine;

    /// <summary>Refunds pending in this process (for tests and health).</summary>
    public int PendingCount
    {
        get
        {
            lock (_lock)
            {
                return _pending.Count;
            }
        }
    }

    /// <summary>
    /// Refunds <paramref name="requestId"/> now if the ledger answers within <c>McpGuard:StoreTimeout</c>; else keeps it to
    /// retry and returns null. <paramref name="outcomeUnknown"/>: the charge itself failed, so it may land later.
    /// </summary>
    public ValueTask<bool?> RefundAsync(string requestId, string reason, bool outcomeUnknown) =>
        RefundAsync(requestId, reason, outcomeUnknown ? new Attempt(null, default) : null);

    /// <summary>
    /// Refunds the charge one attempt may have made, whose outcome is unknown: on a ledger that can tell attempts apart
    /// (<see cref="IAttemptRefunds"/>) only that attempt's row, so that a client's retry with the same request id, charged
    /// and served, stands.
    /// </summary>
    public ValueTask<bool?> RefundAttemptAsync(string requestId, string account, DateTimeOffset chargedAt, string reason) =>
        RefundAsync(requestId, reason, new Attempt(account, chargedAt));

    /// <summary>Whether the ledger can refund exactly one attempt's charge.</summary>
    public bool RefundsAttempts => ledger is IAttemptRefunds;

    private async ValueTask<bool?> RefundAsync(string requestId, string reason, Attempt? attempt)
    {
        var outcomeUnknown = attempt is not null;
        try
        {
            var refunded = await CallAsync(requestId, attempt);
            if (refunded || !outcomeUnknown)
            {
                return refunded;
            }
        }
        catch (Exception ex) when (!_stopping.IsCancellationRequested)
        {
            Log.RefundFailed(logger, ex, requestId, reason);
        }

        Keep(requestId, reason, attempt);
        return null;
    }

    /// <summary>Asks the ledger for one refund, under <c>McpGuard:StoreTimeout</c> unless the ledger is the embedded one.</summary>
    private async ValueTask<bool> CallAsync(string requestId, Attempt? attempt)
    {
        using var call = telemetry.StoreCall("ledger", "refund");
        try
        {
            if (Embedded)
            {
                return await ledger.RefundAsync(requestId, clock.GetUtcNow(), CancellationToken.None);
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(states.Current.Options.StoreTimeout);
            return attempt is { Account: { } account } && ledger is IAttemptRefunds attempts
                ? await attempts.RefundAttemptAsync(requestId, account, attempt.Value.ChargedAt, clock.GetUtcNow(), timeout.Token)
                : await ledger.RefundAsync(requestId, clock.GetUtcNow(), timeout.Token);
        }
        catch (Exception ex) when (!_stopping.IsCancellationRequested)
        {
            call.Fail(ex);
            throw;
        }
    }

    private void Keep(string requestId, string reason, Attempt? attempt)
    {
        lock (_lock)
        {
            _pending[requestId] = new Pending(reason, attempt is null ? null : clock.GetUtcNow() + LateChargeWindow, Attempts: 1, attempt);
            if (_loop is null)
            {
                // The loop outlives the request that started it: it must not run (nor trace its retries) in that request's context.
                using (ExecutionContext.SuppressFlow())
                {
                    _loop = Task.Run(RetryLoopAsync);
                }
            }
        }
    }

    private async Task RetryLoopAsync()
    {
        var pause = TimeSpan.FromMilliseconds(250);
        while (!_stopping.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(pause, clock, _stopping.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            KeyValuePair<string, Pending>[] due;
            lock (_lock)
            {
                if (_pending.Count == 0)
                {
                    _loop = null;
                    return;
                }

                due = [.. _pending];
            }

            var failed = false;
            foreach (var (requestId, pending) in due)
            {
                bool refunded;
                try
                {
                    refunded = await CallAsync(requestId, pending.Attempt);
                }
                catch (Exception ex) when (!_stopping.IsCancellationRequested)
                {
                    failed = true;
                    Log.RefundFailed(logger, ex, requestId, pending.Reason);
                    Tried(requestId, pending);
                    continue;
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                var settled = refunded || pending.WatchUntil is not { } until || clock.GetUtcNow() >= until;
                if (settled)
                {
                    lock (_lock)
                    {
                        _pending.Remove(requestId);
                    }

                    Log.RefundRetried(logger, requestId, pending.Reason, refunded, pending.Attempts + 1);
                }
                else
                {
                    Tried(requestId, pending);
                }
            }

            // Back off while the ledger fails (up to 5 s); watch late charges at a steady pace.
            pause = failed ? TimeSpan.FromTicks(Math.Min(pause.Ticks * 2, TimeSpan.FromSeconds(5).Ticks)) : TimeSpan.FromSeconds(1);
        }
    }

    /// <summary>Counts one more attempt of a refund that stays pending.</summary>
    private void Tried(string requestId, Pending pending)
    {
        lock (_lock)
        {
            _pending[requestId] = pending with { Attempts = pending.Attempts + 1 };
        }
    }

    public void Dispose()
    {
        _stopping.Cancel();
        lock (_lock)
        {
            foreach (var (requestId, pending) in _pending)
            {
                Log.RefundAbandoned(logger, requestId, pending.Reason);
            }

            _pending.Clear();
        }
    }

    private readonly record struct Pending(string Reason, DateTimeOffset? WatchUntil, int Attempts, Attempt? Attempt);

    /// <summary>The attempt whose charge's outcome is unknown: its account and the time it charged at (null account: by request id alone).</summary>
    private readonly record struct Attempt(string? Account, DateTimeOffset ChargedAt);

    private static partial class Log
    {
        [LoggerMessage(6103, LogLevel.Warning, "The ledger did not answer the refund of request {RequestId} ({Reason}); it will be retried.", EventName = "RefundFailed")]
        public static partial void RefundFailed(ILogger logger, Exception exception, string requestId, string reason);

        [LoggerMessage(6104, LogLevel.Information, "Refund of request {RequestId} ({Reason}) settled after {Attempts} attempts; refunded: {Refunded}.", EventName = "RefundRetried")]
        public static partial void RefundRetried(ILogger logger, string requestId, string reason, bool refunded, int attempts);

        [LoggerMessage(6105, LogLevel.Error, "McpGuard stopped with the refund of request {RequestId} ({Reason}) not done: credit the account back with an adjustment (POST /admin/accounts/{{id}}/adjustments).", EventName = "RefundAbandoned")]
        public static partial void RefundAbandoned(ILogger logger, string requestId, string reason);
    }
}
