using System.Globalization;
using McpGuard.Errors;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace McpGuard.Credits;

/// <summary>
/// Runs the endpoint for a call the credit gate charged, and settles the charge by the endpoint's outcome: the debit
/// stands when the server answered the call, and is refunded in the same request when it did not. It alone swaps the
/// response's features (the body it reads the answer from, and a request lifetime that ends at the upstream timeout),
/// and restores them before it returns.
/// </summary>
internal sealed partial class ChargeSettlement(RefundRetry refunds, CreditGate credits, TimeProvider clock, McpGuardErrorWriter writer, McpGuard.Telemetry.McpGuardTelemetry telemetry, ILogger<CreditGate> logger)
{
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
    public async Task InvokeAsync(HttpContext context, RequestDelegate next, McpGuardFeature feature)
    {
        var creditState = feature.State.Credits;
        var charge = feature.Charge!;
        var original = context.Features.GetRequiredFeature<IHttpRequestLifetimeFeature>();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(original.RequestAborted);
        var lifetime = new LinkedLifetime(original, linked);
        using var timeout = lifetime.StartTimeout(clock, creditState.UpstreamTimeout);
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

        if (failure is null && answer.Answer == AnswerKind.None)
        {
            // An endpoint that stops quietly when its request is cancelled (as the MCP SDK does) has not answered either.
            failure = original.RequestAborted.IsCancellationRequested ? "client disconnected" : lifetime.TimedOut ? "timeout" : null;
        }

        // The answer decides, whatever came after it; without one, the first failure says why.
        var reason = answer.Answer == AnswerKind.Result && context.Response.StatusCode < StatusCodes.Status400BadRequest
            ? null
            : failure ?? Unserved(context, answer, creditState.RefundToolInternalErrors);
        if (reason is not null && !charge.Refunded)
        {
            await RefundAsync(feature, reason);
        }
        else if (reason is null)
        {
            // Served: a metered call whose tool reported no units (or whose filter did not run) is charged its maximum.
            await credits.CaptureAsync(feature, units: null);
        }

        // No answer in time and nothing sent yet: the guard answers 504 upstream_timeout for the endpoint (below).
        var timeoutAnswer = failure == "timeout" && exception is null && !body.Released && !context.Response.HasStarted
            ? feature.State.Catalog[McpGuardReasons.UpstreamTimeout]
            : null;
        feature.RecordSettlement(new Settlement(reason) { AnsweredWith = timeoutAnswer });

        if (failure is not null && !body.Released)
        {
            // Nothing reached the client: the guard answers for the endpoint (504, or 500 through the pipeline).
            body.Discard();
            context.Features.Set(inner);
            if (exception is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(exception).Throw();
            }

            if (timeoutAnswer is not null)
            {
                await writer.ReplaceResponseAsync(context, new McpGuardError(timeoutAnswer,
                    $"Upstream timeout: no answer within {creditState.UpstreamTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s; the charge was refunded."));
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
        else if (answer.IsFinal)
        {
            // Served, and the answer is the first message: a metered call is captured before its headers say what it cost.
            await credits.CaptureAsync(feature, units: null);
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

        // Null: the ledger did not answer, and the refund is kept to retry; the call carries no charge either way.
        var refunded = await refunds.RefundAsync(feature.RequestId, reason, outcomeUnknown: false);
        charge.Refunded = refunded ?? true;
        if (refunded is not false && !charge.Free && (charge.Meter is null ? charge.PriceMicro : charge.CapturedMicro ?? 0) is > 0 and var given)
        {
            // Made, or kept to retry until the ledger answers: either way the caller is not charged for this call. (A
            // released reservation was never counted as charged.)
            telemetry.Refunded(feature, given);
        }

        if (refunded is { } done)
        {
            Log.Refunded(logger, feature.RequestId, reason, done);
        }
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
        [LoggerMessage(6102, LogLevel.Information, "Request {RequestId} was not served ({Failure}); refunded: {Refunded}.", EventName = "Refunded")]
        public static partial void Refunded(ILogger logger, string requestId, string failure, bool refunded);
    }
}
