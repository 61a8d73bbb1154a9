using System.Globalization;
using McpGuard.Auth;
using McpGuard.Errors;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace McpGuard.Credits;

/// <summary>A charge taken for this request, to be settled after the endpoint ran.</summary>
internal sealed class ChargeTicket(HttpResponse response, long priceMicro, string priceText, bool free, long balanceAfterMicro)
{
    /// <summary>Adds the charge headers when the response starts; the ticket is the callback's state, so registering it allocates nothing more.</summary>
    public static readonly Func<object, Task> OnStarting = static state =>
    {
        ((ChargeTicket)state).WriteHeaders();
        return Task.CompletedTask;
    };

    public long PriceMicro { get; } = priceMicro;

    public bool Free { get; } = free;

    public long BalanceAfterMicro { get; } = balanceAfterMicro;

    /// <summary>Set once the charge was given back; a response that starts after that carries no charge headers.</summary>
    public bool Refunded { get; set; }

    private void WriteHeaders()
    {
        if (response.StatusCode < StatusCodes.Status400BadRequest && !Refunded)
        {
            response.Headers[CreditGate.ChargeHeader] = Free ? "0" : priceText;
            response.Headers[CreditGate.BalanceHeader] = BalanceAfterMicro.ToString(CultureInfo.InvariantCulture);
        }
    }
}

/// <summary>
/// The last gate before the endpoint: charges priced calls (free tier,
/// then balance, then monthly cap) durably before the endpoint runs. After it, <see cref="InvokeChargedAsync"/>
/// lets the debit stand when the server answered, and refunds it in the same request when the server failed:
/// an HTTP 5xx, an exception, a stream that broke mid-way, a timeout, or the client going away.
/// </summary>
internal sealed partial class CreditGate(IMcpGuardLedgerStore ledger, TimeProvider clock, ILogger<CreditGate> logger)
{
    internal const string ChargeHeader = "McpGuard-Charge-Micro";
    internal const string BalanceHeader = "McpGuard-Balance-Micro";

    public async ValueTask<McpGuardError?> CheckAsync(HttpContext context, McpGuardFeature feature)
    {
        var state = feature.State;
        var credits = state.Credits;
        if (!credits.Enabled || feature.Envelope is not { Kind: McpMessageKind.Request } envelope)
        {
            return null;
        }

        var price = credits.Price(envelope);
        if (price == 0)
        {
            return null;
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
                Challenge = Challenges.Unauthorized(state.Auth, error: null, description: null, AuthenticationGate.ChallengeScopes(state.Auth, feature)),
            };
        }

        var now = clock.GetUtcNow();
        var subject = envelope.ToolName ?? envelope.Method!;
        var result = await ledger.ChargeAsync(
            new McpGuardChargeRequest(caller.Account, feature.RequestId, subject, price, credits.FreeCallsFor(caller.Account), now),
            CancellationToken.None);

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

        var free = result.Outcome == McpGuardChargeOutcome.Free;
        feature.Charge = new ChargeTicket(context.Response, price, credits.PriceText(price), free, result.BalanceMicro);
        context.Response.OnStarting(ChargeTicket.OnStarting, feature.Charge);
        return null;
    }

    /// <summary>
    /// Runs the endpoint for a charged call under the upstream timeout and settles the charge by its outcome: the debit
    /// stands only when the endpoint wrote, in full and with a status below 400, a JSON-RPC <c>result</c> answering the
    /// charged request (a tool result with <c>isError: true</c> is the tool answering). Anything else is refunded in the
    /// same request: an HTTP status of 400 or more, a JSON-RPC <c>error</c>, a result that asks for more input
    /// (<c>resultType</c> other than <c>complete</c>), an <c>internal_error</c> tool result when
    /// <c>RefundToolInternalErrors</c> is on, no answer at all, an exception, a timeout or the client going away first.
    /// When the first message the endpoint writes is its answer, the refund happens before the response starts, so the
    /// client sees no charge headers for it.
    /// </summary>
    public async Task InvokeChargedAsync(HttpContext context, RequestDelegate next, McpGuardFeature feature, McpGuardErrorWriter writer)
    {
        var credits = feature.State.Credits;
        var charge = feature.Charge!;
        var original = context.Features.GetRequiredFeature<IHttpRequestLifetimeFeature>();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(original.RequestAborted);
        var lifetime = new LinkedLifetime(original, linked);
        using var timeout = lifetime.StartTimeout(clock, credits.UpstreamTimeout);
        context.Features.Set<IHttpRequestLifetimeFeature>(lifetime);
        var inner = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
        var answer = new ResponseAnswerReader(feature.Envelope!.Id);
        var body = new SettlingResponseBody(inner, context.Response, answer, () => SettleBeforeHeadersAsync(context, feature, answer));
        context.Features.Set<IHttpResponseBodyFeature>(body);

        string? failure = null;
        Exception? exception = null;
        try
        {
            await next(context);
            answer.Complete();
        }
        catch (OperationCanceledException) when (original.RequestAborted.IsCancellationRequested)
        {
            failure = "client disconnected";
        }
        catch (OperationCanceledException) when (lifetime.TimedOut)
        {
            failure = "timeout";
        }
        catch (Exception ex)
        {
            failure = "exception";
            exception = ex;
        }
        finally
        {
            context.Features.Set(original);
        }

        if (failure is null && lifetime.TimedOut && answer.Answer == AnswerKind.None)
        {
            failure = "timeout";
        }

        // The answer decides, whatever came after it; without one, the first failure says why.
        var reason = answer.Answer == AnswerKind.Result && context.Response.StatusCode < StatusCodes.Status400BadRequest
            ? null
            : failure ?? Unserved(context, answer, credits.RefundToolInternalErrors);
        if (reason is not null && !charge.Refunded)
        {
            await RefundAsync(feature, reason);
        }

        if (failure is not null && !body.Released)
        {
            // Nothing reached the client: the guard answers for the endpoint (504, or 500 through the pipeline).
            body.Discard();
            context.Features.Set(inner);
            if (exception is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(exception).Throw();
            }

            if (failure == "timeout" && !context.Response.HasStarted)
            {
                await writer.ReplaceResponseAsync(context, new McpGuardError(feature.State.Catalog[McpGuardReasons.UpstreamTimeout],
                    $"Upstream timeout: no answer within {credits.UpstreamTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s; the charge was refunded."));
            }

            return;
        }

        try
        {
            if (failure is null)
            {
                await body.ReleaseAsync(context.RequestAborted);
            }
        }
        finally
        {
            context.Features.Set(inner);
        }

        if (exception is not null)
        {
            // The pipeline logs it once; the response has started, so it ends the stream.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(exception).Throw();
        }
    }

    /// <summary>Runs when the response is about to start: a call whose answer already says it was not served is refunded now.</summary>
    private async ValueTask SettleBeforeHeadersAsync(HttpContext context, McpGuardFeature feature, ResponseAnswerReader answer)
    {
        if (!answer.IsFinal && context.Response.StatusCode < StatusCodes.Status400BadRequest)
        {
            // Not known yet (a stream whose first message is not the answer): settled when the call ends.
            return;
        }

        if (Unserved(context, answer, feature.State.Credits.RefundToolInternalErrors) is { } reason)
        {
            await RefundAsync(feature, reason);
        }
    }

    /// <summary>Why a call that ran to its end was not served, or null when it was.</summary>
    private static string? Unserved(HttpContext context, ResponseAnswerReader answer, bool refundToolInternalErrors)
    {
        if (context.Response.StatusCode >= StatusCodes.Status400BadRequest)
        {
            return "status " + context.Response.StatusCode.ToString(CultureInfo.InvariantCulture);
        }

        return answer.Answer switch
        {
            AnswerKind.Result => null,
            AnswerKind.ToolInternalError => refundToolInternalErrors ? "tool internal_error" : null,
            AnswerKind.Incomplete => "input required",
            AnswerKind.Error => "JSON-RPC error",
            _ => "no answer",
        };
    }

    private async ValueTask RefundAsync(McpGuardFeature feature, string reason)
    {
        var charge = feature.Charge!;
        if (charge.Refunded)
        {
            return;
        }

        var refunded = await ledger.RefundAsync(feature.RequestId, clock.GetUtcNow(), CancellationToken.None);
        charge.Refunded = refunded;
        Log.Refunded(logger, feature.RequestId, reason, refunded);
    }

    /// <summary>
    /// The request's lifetime with <c>RequestAborted</c> also firing on the upstream timeout; aborting still aborts the
    /// connection. The timeout is a timer on McpGuard's clock that cancels the linked source, instead of a second
    /// cancellation source linked in: one source, one registration and one timer per charged call.
    /// </summary>
    private sealed class LinkedLifetime(IHttpRequestLifetimeFeature inner, CancellationTokenSource linked) : IHttpRequestLifetimeFeature
    {
        private volatile bool _timedOut;

        public CancellationToken RequestAborted
        {
            get => linked.Token;
            set => throw new NotSupportedException("McpGuard owns RequestAborted while a charged call runs.");
        }

        /// <summary>Whether the upstream timeout has fired (it stays set, like a cancelled source).</summary>
        public bool TimedOut => _timedOut;

        public void Abort() => inner.Abort();

        /// <summary>Starts the upstream timeout. Like a cancellation source's own timer, it does not capture the request's execution context.</summary>
        public ITimer StartTimeout(TimeProvider clock, TimeSpan timeout)
        {
            using (ExecutionContext.SuppressFlow())
            {
                return clock.CreateTimer(static state => ((LinkedLifetime)state!).TimeOut(), this, timeout, Timeout.InfiniteTimeSpan);
            }
        }

        private void TimeOut()
        {
            _timedOut = true;
            try
            {
                linked.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // The call ended while the timer fired; nothing is listening any more.
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(6101, LogLevel.Information, "Account {Account} refused ({Reason}) for a call priced {Price}; request {RequestId}.", EventName = "ChargeRefused")]
        public static partial void Refused(ILogger logger, string account, string reason, long price, string requestId);

        [LoggerMessage(6102, LogLevel.Information, "Request {RequestId} was not served ({Failure}); refunded: {Refunded}.", EventName = "Refunded")]
        public static partial void Refunded(ILogger logger, string requestId, string failure, bool refunded);
    }
}
