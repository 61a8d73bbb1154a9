using System.Diagnostics;
using McpGuard.Auth;
using McpGuard.Credits;
using McpGuard.Errors;
using McpGuard.RateLimiting;
using McpGuard.Protocol;
using McpGuard.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace McpGuard;

/// <summary>
/// Runs one guarded request: request id, front door, the gates, then the MCP endpoint, translating anything
/// that escapes the endpoint. Shared by <c>UseMcpGuard()</c> and <c>RequireMcpGuard()</c>.
/// </summary>
internal sealed partial class McpGuardPipeline(
    McpGuardStateProvider states,
    FrontDoor frontDoor,
    AuthenticationGate authentication,
    AuthorizationGate authorization,
    McpGuard.Tools.ToolStatusGate toolStatus,
    RateLimitGate rateLimits,
    CreditGate credits,
    ChargeSettlement settlement,
    McpGuardErrorWriter writer,
    McpGuardTelemetry telemetry,
    ILogger<McpGuardPipeline> logger)
{
    /// <param name="context">The request.</param>
    /// <param name="next">The endpoint.</param>
    /// <param name="legacySse">Whether the endpoint is one of the legacy HTTP+SSE transport's, which answers on another request.</param>
    public async Task InvokeAsync(HttpContext context, RequestDelegate next, bool legacySse = false)
    {
        if (context.Features.Get<McpGuardFeature>() is not null)
        {
            // Guarded twice (UseMcpGuard and RequireMcpGuard on the same endpoint): the first run did the work.
            await next(context);
            return;
        }

        var started = Stopwatch.GetTimestamp();
        using var activity = McpGuardTelemetry.Source.StartActivity("McpGuard");
        var state = states.Current;
        var incoming = context.Request.Headers[state.RequestIdHeader];
        var sent = incoming.Count == 1 && RequestIds.IsWellFormed(incoming[0]);
        var requestId = sent ? incoming[0]! : RequestIds.NewId();
        var feature = new McpGuardFeature(requestId, state) { LegacySse = legacySse, NewRequestId = !sent };
        context.Features.Set(feature);
        context.TraceIdentifier = requestId;
        context.Response.Headers[state.RequestIdHeader] = requestId;
        try
        {
            McpGuardError? error;
            try
            {
                error = await CheckAsync(context, feature);
            }
            catch (Exception ex) when (ClientDisconnect.Caused(ex, context))
            {
                // Nobody is left to answer. Aborting also stops the server from draining a body that will never arrive.
                Log.ClientDisconnected(logger, requestId);
                Ended(activity, feature, TelemetryNames.Method(feature.Envelope), TelemetryNames.Tool(feature.Envelope, state), McpGuardTelemetry.Outcomes.Abandoned, null, Stopwatch.GetElapsedTime(started).TotalSeconds);
                context.Abort();
                return;
            }
            catch (Exception ex)
            {
                // A gate that fails (say, a ledger that can no longer write) is McpGuard's own failure: answer it as such.
                Log.GateFailed(logger, ex, requestId);
                McpGuardTelemetry.Failed(activity, ex);
                error = new McpGuardError(state.Catalog[McpGuardReasons.InternalError]);
            }

            var guardSeconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            var method = TelemetryNames.Method(feature.Envelope);
            var tool = TelemetryNames.Tool(feature.Envelope, state);
            Describe(activity, context, feature, method, tool);
            if (error is not null)
            {
                Log.Rejected(logger, error.Descriptor.Reason, error.Descriptor.StatusCode, requestId);
                Ended(activity, feature, method, tool, McpGuardTelemetry.Outcomes.Refused, error.Descriptor, guardSeconds);
                await writer.WriteAsync(context, error);
                return;
            }

            if (feature.Caller is null)
            {
                // The SDK hands a handler the request's principal only when it is authenticated; an anonymous request's id reaches
                // McpGuard's tool filters through the execution context instead (as IHttpContextAccessor would, without
                // registering that for the whole app). Set here, in the frame that runs the endpoint, so the endpoint sees it.
                McpGuardFeature.AnonymousRequest.Value = feature;
            }

            var failure = await InvokeEndpointAsync(context, next, feature) ?? feature.Settlement?.AnsweredWith;
            Ended(activity, feature, method, tool, McpGuardTelemetry.Outcomes.Of(failure), failure, guardSeconds);
        }
        finally
        {
            feature.ReleaseBodyInPlace();
        }
    }

    /// <summary>Names the request's span after what it asks (<c>McpGuard tools/call add</c>) and tags it, once the front door has read it.</summary>
    private static void Describe(Activity? activity, HttpContext context, McpGuardFeature feature, string method, string? tool)
    {
        if (activity is null)
        {
            return;
        }

        activity.DisplayName = tool is null ? $"McpGuard {method}" : $"McpGuard {method} {tool}";
        activity.SetTag(McpGuardTelemetry.Tags.Method, method);
        activity.SetTag(McpGuardTelemetry.Tags.RequestId, feature.RequestId);
        if (tool is not null)
        {
            activity.SetTag(McpGuardTelemetry.Tags.Tool, tool);
            activity.SetTag(McpGuardTelemetry.Tags.Operation, "execute_tool");
        }

        if (feature.Envelope is { Id.IsNone: false } envelope)
        {
            activity.SetTag(McpGuardTelemetry.Tags.JsonRpcId, envelope.Id.ToString());
        }

        if (context.Request.Headers["Mcp-Session-Id"] is { Count: 1 } session)
        {
            activity.SetTag(McpGuardTelemetry.Tags.SessionId, session[0]);
        }

        if ((feature.Envelope?.ProtocolVersion ?? context.Request.Headers["MCP-Protocol-Version"].FirstOrDefault()) is { } version)
        {
            activity.SetTag(McpGuardTelemetry.Tags.ProtocolVersion, version);
        }
    }

    /// <summary>Counts the request and closes its span with the outcome and, for a refusal or failure, the catalog reason.</summary>
    private void Ended(Activity? activity, McpGuardFeature feature, string method, string? tool, string outcome, McpGuardErrorDescriptor? failure, double guardSeconds)
    {
        var reason = failure?.Reason;
        var account = McpGuardTelemetry.Account(feature);
        telemetry.RequestEnded(method, tool, outcome, reason, account, guardSeconds);
        if (activity is null)
        {
            return;
        }

        activity.SetTag(McpGuardTelemetry.Tags.Outcome, outcome);
        if (reason is not null)
        {
            activity.SetTag(McpGuardTelemetry.Tags.Reason, reason);
            if (activity.GetTagItem(McpGuardTelemetry.Tags.ErrorType) is null)
            {
                // A gate that threw has already named its exception's type here.
                activity.SetTag(McpGuardTelemetry.Tags.ErrorType, reason);
            }

            if (McpGuardTelemetry.IsFault(reason))
            {
                activity.SetStatus(ActivityStatusCode.Error, reason);
            }
        }

        if (account is not null)
        {
            activity.SetTag(McpGuardTelemetry.Tags.Account, account);
        }
    }

    /// <summary>
    /// The gates in order. Each reads what the earlier ones decided from the feature; the value a gate decides (the
    /// envelope, the caller, the charge) is recorded once, here or by the front door, and never changed after.
    /// </summary>
    private async ValueTask<McpGuardError?> CheckAsync(HttpContext context, McpGuardFeature feature)
    {
        if (await frontDoor.CheckAsync(context, feature) is { } refused)
        {
            return refused;
        }

        var authenticated = await authentication.AuthenticateAsync(context, feature.State, feature.Envelope, feature.RequestId);
        if (authenticated.Error is not null)
        {
            return authenticated.Error;
        }

        if (authenticated.Value is { } caller)
        {
            feature.RecordCaller(caller);
            if (McpGuardCallerIdentity.Find(context.User) is { } identity)
            {
                identity.Request = feature;
            }
        }

        var error = await authorization.CheckAsync(feature)
            ?? await toolStatus.CheckAsync(feature)
            ?? CreditGate.CheckCeiling(feature)
            ?? await rateLimits.CheckAsync(context, feature);
        if (error is not null)
        {
            return error;
        }

        var charged = await credits.ChargeAsync(context, feature);
        if (charged.Value is { } charge)
        {
            feature.RecordCharge(charge);
        }

        return charged.Error;
    }

    /// <returns>Null when the endpoint answered; else the catalog entry of the error the caller got instead.</returns>
    private async Task<McpGuardErrorDescriptor?> InvokeEndpointAsync(HttpContext context, RequestDelegate next, McpGuardFeature feature)
    {
        try
        {
            if (feature.Charge is not null)
            {
                await settlement.InvokeAsync(context, next, feature);
            }
            else
            {
                await next(context);
            }
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            Log.ClientDisconnected(logger, feature.RequestId);
        }
        catch (McpGuardEndpointException ex)
        {
            Log.EndpointRefused(logger, ex.Error.Descriptor.Reason, ex.Error.Descriptor.StatusCode, feature.RequestId, ex.InnerException?.Message ?? ex.Message);
            if (!context.Response.HasStarted)
            {
                await writer.ReplaceResponseAsync(context, ex.Error);
            }

            return ex.Error.Descriptor;
        }
        catch (Exception ex)
        {
            Log.EndpointFailed(logger, ex, feature.RequestId);
            var internalError = feature.State.Catalog[McpGuardReasons.InternalError];
            if (!context.Response.HasStarted)
            {
                await writer.ReplaceResponseAsync(context, new McpGuardError(internalError));
            }

            // Too late to change the status once the response started: the stream ends cleanly rather than resetting the connection.
            return internalError;
        }

        return null;
    }

    private static partial class Log
    {
        [LoggerMessage(2001, LogLevel.Information, "McpGuard refused request {RequestId}: {Reason} ({StatusCode}).", EventName = "Rejected")]
        public static partial void Rejected(ILogger logger, string reason, int statusCode, string requestId);

        [LoggerMessage(2002, LogLevel.Error, "The MCP endpoint failed while serving request {RequestId}.", EventName = "EndpointFailed")]
        public static partial void EndpointFailed(ILogger logger, Exception exception, string requestId);

        [LoggerMessage(2005, LogLevel.Warning, "The MCP endpoint could not serve request {RequestId}: {Reason} ({StatusCode}); {Cause}", EventName = "EndpointRefused")]
        public static partial void EndpointRefused(ILogger logger, string reason, int statusCode, string requestId, string cause);

        [LoggerMessage(2004, LogLevel.Error, "McpGuard failed while checking request {RequestId}; the caller gets internal_error.", EventName = "GateFailed")]
        public static partial void GateFailed(ILogger logger, Exception exception, string requestId);

        [LoggerMessage(2003, LogLevel.Debug, "The client disconnected during request {RequestId}.", EventName = "ClientDisconnected")]
        public static partial void ClientDisconnected(ILogger logger, string requestId);
    }
}
