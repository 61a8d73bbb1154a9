using System.Globalization;
using McpGuard.Auth;
using McpGuard.Errors;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace McpGuard.Credits;

/// <summary>A charge taken for this request (for a metered tool, a reservation), to be settled after the endpoint ran.</summary>
internal sealed class ChargeTicket(HttpResponse response, long priceMicro, string priceText, bool free, long balanceAfterMicro, ToolMeter? meter = null)
{
    private long _balanceAfter = balanceAfterMicro;
    private long _captured = -1;
    private int _captureTried;
    private volatile bool _refunded;

    /// <summary>Adds the charge headers when the response starts; the ticket is the callback's state, so registering it allocates nothing more.</summary>
    public static readonly Func<object, Task> OnStarting = static state =>
    {
        ((ChargeTicket)state).WriteHeaders();
        return Task.CompletedTask;
    };

    /// <summary>The flat price, or the metered maximum reserved.</summary>
    public long PriceMicro { get; } = priceMicro;

    public bool Free { get; } = free;

    /// <summary>The tool's metered price when the charge is a reservation (not for a free call); null for a flat price.</summary>
    public ToolMeter? Meter { get; } = free ? null : meter;

    /// <summary>The balance after the charge (after the capture, for a metered call once captured).</summary>
    public long BalanceAfterMicro => Volatile.Read(ref _balanceAfter);

    /// <summary>What a metered call's capture took; null before it (and for a flat price).</summary>
    public long? CapturedMicro => Volatile.Read(ref _captured) is >= 0 and var captured ? captured : null;

    /// <summary>What the call costs the caller as things stand: the flat price, the capture, or (metered, not captured yet) the hold.</summary>
    public long ChargedMicro => Free ? 0 : CapturedMicro ?? PriceMicro;

    /// <summary>Records a metered call's capture row.</summary>
    public void Captured(McpGuardLedgerEntry capture)
    {
        Volatile.Write(ref _balanceAfter, capture.BalanceAfterMicro);
        Volatile.Write(ref _captured, -capture.AmountMicro);
    }

    /// <summary>
    /// Set once the charge was given back; a response that starts after that carries no charge headers. Written by the
    /// settlement and read by the tool filter, which may run on another thread.
    /// </summary>
    public bool Refunded
    {
        get => _refunded;
        set => _refunded = value;
    }

    /// <summary>
    /// Claims the one capture a metered call gets: true the first time only. A capture that failed (the ledger did not
    /// answer) is not tried again at the maximum: its hold is released when it expires, and the call is not billed.
    /// </summary>
    public bool TryStartCapture() => Interlocked.Exchange(ref _captureTried, 1) == 0;

    private void WriteHeaders()
    {
        // A metered call not captured yet (its answer comes after the headers, in a stream) has no charge to announce: the
        // result's _meta["mcpguard/charge"] says what it cost.
        if (response.StatusCode < StatusCodes.Status400BadRequest && !Refunded && (Meter is null || CapturedMicro is not null))
        {
            response.Headers[CreditGate.ChargeHeader] = Free ? "0" : CapturedMicro is { } captured ? captured.ToString(CultureInfo.InvariantCulture) : priceText;
            response.Headers[CreditGate.BalanceHeader] = BalanceAfterMicro.ToString(CultureInfo.InvariantCulture);
        }
    }
}

/// <summary>
/// The last gate before the endpoint: charges priced calls (free tier, then balance, then monthly cap) durably before
/// the endpoint runs. <see cref="ChargeSettlement"/> then settles the charge by what the endpoint answered.
/// </summary>
internal sealed partial class CreditGate(IMcpGuardLedgerStore ledger, TimeProvider clock, RefundRetry refunds, McpGuard.Telemetry.McpGuardTelemetry telemetry, ILogger<CreditGate> logger)
{
    internal const string ChargeHeader = "McpGuard-Charge-Micro";
    internal const string BalanceHeader = "McpGuard-Balance-Micro";

    /// <summary>
    /// Refuses a call whose price (a metered tool's maximum) is above the caller's ceiling: the call's own
    /// <c>params._meta["mcpguard/max_price_micro"]</c> or its API key's, whichever is lower. Runs before the rate limits,
    /// so a refused call is neither charged nor counted.
    /// </summary>
    public static McpGuardError? CheckCeiling(McpGuardFeature feature)
    {
        var credits = feature.State.Credits;
        if (!credits.Enabled || feature.Envelope is not { Kind: McpMessageKind.Request } envelope)
        {
            return null;
        }

        var ceiling = Lower(envelope.MaxPriceMicro, feature.Caller?.MaxPriceMicro);
        if (ceiling is not { } limit || credits.Price(envelope) is var price && price <= limit)
        {
            return null;
        }

        var source = envelope.MaxPriceMicro == limit ? "the call's mcpguard/max_price_micro" : "the API key's ceiling";
        return new McpGuardError(feature.State.Catalog[McpGuardReasons.PriceAboveLimit],
            $"Price above limit: the call costs up to {price} micro-units, above {source} of {limit}; nothing was charged.")
        {
            Data = [new("price_micro", price), new("max_price_micro", limit)],
        };

        static long? Lower(long? a, long? b) => a is { } x && b is { } y ? Math.Min(x, y) : a ?? b;
    }

    /// <summary>
    /// Captures a metered call's reservation: <paramref name="units"/> at the tool's rate (never above the hold), or the
    /// whole hold when the tool reported none. Records the capture on the ticket; false when nothing was captured (the
    /// hold was released already, or the ledger failed: the hold is then released later, and the call is not billed).
    /// </summary>
    public async ValueTask<bool> CaptureAsync(McpGuardFeature feature, long? units)
    {
        if (feature.Charge is not { Meter: { } meter } ticket || ticket.Refunded || !ticket.TryStartCapture())
        {
            return false;
        }

        var amount = units is { } used ? meter.Cost(used, ticket.PriceMicro) : ticket.PriceMicro;
        using var call = telemetry.StoreCall("ledger", "capture");
        using var timeout = new CancellationTokenSource(feature.State.Options.StoreTimeout);
        McpGuardLedgerEntry? capture;
        try
        {
            capture = await ledger.CaptureAsync(feature.RequestId, amount, clock.GetUtcNow(), timeout.Token);
        }
        catch (Exception ex)
        {
            call.Fail(ex);
            Log.CaptureFailed(logger, ex, feature.RequestId);
            return false;
        }

        if (capture is null)
        {
            return false;
        }

        ticket.Captured(capture);
        if (capture.AmountMicro != 0)
        {
            telemetry.Charged(feature, -capture.AmountMicro);
        }

        return true;
    }

    /// <summary>The charge taken for this call (null: nothing to charge), or the refusal.</summary>
    public async ValueTask<GateResult<ChargeTicket>> ChargeAsync(HttpContext context, McpGuardFeature feature)
    {
        var state = feature.State;
        var credits = state.Credits;
        if (!credits.Enabled || feature.Envelope is not { Kind: McpMessageKind.Request } envelope)
        {
            return default;
        }

        var price = credits.Price(envelope);
        if (price == 0)
        {
            return default;
        }

        if (feature.LegacySse)
        {
            // The legacy HTTP+SSE transport answers 202 before the call runs and sends the answer on another request:
            // there is no outcome here to settle a charge by, so there is no charge. MapMcp() maps the legacy routes
            // one segment under its Streamable HTTP endpoint.
            var legacyPath = (context.Request.PathBase + context.Request.Path).Value!.TrimEnd('/');
            var endpointPath = legacyPath.LastIndexOf('/') is > 0 and var slash ? legacyPath[..slash] : "/";
            return new McpGuardError(state.Catalog[McpGuardReasons.StreamableHttpRequired],
                $"Streamable HTTP required: this call has a price, and priced calls are served only over Streamable HTTP (POST {endpointPath}), where the answer settles the charge.");
        }

        if (feature.Caller is not { } caller)
        {
            // Anonymous methods cannot be priced: there is nobody to charge. A 401 carries a challenge (RFC 9110), the
            // same one the authentication gate sends, so an MCP client can discover how to sign in.
            return new McpGuardError(state.Catalog[McpGuardReasons.Unauthorized], "Authentication required: this call has a price.")
            {
                Challenge = Challenges.Unauthorized(state.Auth, error: null, description: null, AuthenticationGate.ChallengeScopes(state.Auth, envelope)),
            };
        }

        var now = clock.GetUtcNow();
        var subject = envelope.ToolName ?? envelope.Method!;
        var meter = envelope.ToolName is { } meteredTool && credits.Meters.TryGetValue(meteredTool, out var found) ? found : null;
        var request = new McpGuardChargeRequest(caller.Account, feature.RequestId, subject, price, credits.FreeCallsFor(caller.Account), now, feature.NewRequestId, reserve: meter is not null);
        McpGuardChargeResult result;
        using var call = telemetry.StoreCall("ledger", "charge");
        if (ledger is LedgerEngine)
        {
            // The embedded ledger answers from memory and its own durable journal: nothing to time out. It throws only once
            // its journal has failed (the request then gets internal_error, and the ledger's health check says why).
            try
            {
                result = await ledger.ChargeAsync(request, CancellationToken.None);
            }
            catch (Exception ex)
            {
                call.Fail(ex);
                throw;
            }
        }
        else
        {
            using var timeout = new CancellationTokenSource(state.Options.StoreTimeout);
            try
            {
                result = await ledger.ChargeAsync(request, timeout.Token);
            }
            catch (Exception ex)
            {
                call.Fail(ex);
                // The charge may have landed before the ledger failed: the call is refused, so it must not stand. The
                // refund is asked for now and, while the ledger fails or the charge may still land, again later.
                Log.LedgerFailed(logger, ex, caller.Account, feature.RequestId);
                const string reason = "ledger unavailable while charging";
                if (refunds.RefundsAttempts)
                {
                    // Only this attempt's charge: a retry with the same request id, charged and served, stands.
                    await refunds.RefundAttemptAsync(feature.RequestId, caller.Account, now, reason);
                }
                else if (feature.NewRequestId)
                {
                    // An id McpGuard made: no retry can reuse it, so a refund by id gives back this attempt's charge alone.
                    await refunds.RefundAsync(feature.RequestId, reason, outcomeUnknown: true);
                }
                else
                {
                    // A store of the app's own, and an id the client chose: a refund by id could give back the charge of the
                    // client's served retry. The operator reconciles this one from the log.
                    Log.OutcomeUnknown(logger, caller.Account, feature.RequestId);
                }

                return new McpGuardError(state.Catalog[McpGuardReasons.LedgerUnavailable], "Ledger unavailable: nothing was charged; retry after 1 s.")
                {
                    RetryAfterSeconds = 1,
                };
            }
        }

        switch (result.Outcome)
        {
            case McpGuardChargeOutcome.OutOfCredit:
                Log.Refused(logger, caller.Account, "out_of_credit", price, feature.RequestId);
                return new McpGuardError(state.Catalog[McpGuardReasons.OutOfCredit], "Insufficient credit")
                {
                    Data = credits.TopUpUrl is { } url
                        ? [new("balance_micro", result.BalanceMicro), new("price_micro", price), new("topup_url", url)]
                        : [new("balance_micro", result.BalanceMicro), new("price_micro", price)],
                };
            case McpGuardChargeOutcome.CapReached:
                Log.Refused(logger, caller.Account, "cap_reached", price, feature.RequestId);
                return new McpGuardError(state.Catalog[McpGuardReasons.CapReached], "Monthly spending cap reached")
                {
                    Data = [new("cap_micro", result.MonthlyCapMicro), new("spent_micro", result.SpentThisMonthMicro), new("price_micro", price), new("resets_at", CreditState.NextMonth(now))],
                };
            case McpGuardChargeOutcome.DuplicateRequest:
                Log.Refused(logger, caller.Account, "duplicate_request", price, feature.RequestId);
                return new McpGuardError(state.Catalog[McpGuardReasons.DuplicateRequest], $"Request id '{feature.RequestId}' was already charged.");
        }

        call.Span?.SetTag(McpGuard.Telemetry.McpGuardTelemetry.Tags.ChargeOutcome, result.Outcome switch
        {
            McpGuardChargeOutcome.Charged => "charged",
            McpGuardChargeOutcome.Free => "free",
            McpGuardChargeOutcome.OutOfCredit => "out_of_credit",
            McpGuardChargeOutcome.CapReached => "cap_reached",
            McpGuardChargeOutcome.DuplicateRequest => "duplicate_request",
            _ => "other",
        });
        var free = result.Outcome == McpGuardChargeOutcome.Free;
        if (!free && meter is null)
        {
            // A metered call counts what its capture takes, when it takes it.
            telemetry.Charged(feature, price);
        }

        var ticket = new ChargeTicket(context.Response, price, credits.PriceText(price), free, result.BalanceMicro, meter);
        context.Response.OnStarting(ChargeTicket.OnStarting, ticket);
        return new(ticket, null);
    }

    private static partial class Log
    {
        [LoggerMessage(6101, LogLevel.Information, "Account {Account} refused ({Reason}) for a call priced {Price}; request {RequestId}.", EventName = "ChargeRefused")]
        public static partial void Refused(ILogger logger, string account, string reason, long price, string requestId);

        [LoggerMessage(6106, LogLevel.Error, "The ledger did not answer the charge of account {Account} for request {RequestId}; the call is refused with ledger_unavailable.", EventName = "LedgerUnavailable")]
        public static partial void LedgerFailed(ILogger logger, Exception exception, string account, string requestId);

        [LoggerMessage(6108, LogLevel.Error, "The ledger did not capture the reservation of request {RequestId}; the hold is released when it expires, and the call is not billed.", EventName = "CaptureFailed")]
        public static partial void CaptureFailed(ILogger logger, Exception exception, string requestId);

        [LoggerMessage(6107, LogLevel.Error, "The charge of account {Account} for request {RequestId} may have landed though the call was refused; the ledger cannot refund one attempt and the client chose the id, so it is not refunded automatically: check the ledger for this request id.", EventName = "ChargeOutcomeUnknown")]
        public static partial void OutcomeUnknown(ILogger logger, string account, string requestId);
    }
}
