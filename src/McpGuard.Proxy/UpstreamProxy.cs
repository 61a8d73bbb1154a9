using System.Globalization;
using McpGuard.Auth;
using McpGuard.Credits;
using McpGuard.Errors;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace McpGuard.Proxy;

/// <summary>
/// The endpoint behind <c>MapMcpGuardProxy()</c>: forwards a request the gates passed to the upstream with YARP's
/// <see cref="IHttpForwarder"/>, the response streaming back unbuffered, and turns a failure to reach the upstream into
/// <c>upstream_error</c> (502) or <c>upstream_timeout</c> (504), which the settlement refunds like any unserved call.
/// A <c>tools/list</c> answer (and a list of priced prompts or resources) is held and rewritten
/// (<see cref="ToolListRewriter"/>) before it goes back; a priced <c>tools/call</c>'s answer gets its charge in its
/// <c>_meta</c> on the way (<see cref="ChargedAnswerBody"/>), everything else in its stream passing as it comes.
/// </summary>
internal sealed partial class UpstreamProxy : IDisposable
{
    private readonly IHttpForwarder _forwarder;
    private readonly McpGuardStateProvider _states;
    private readonly ToolListRewriter _lists;
    private readonly CreditGate _credits;
    private readonly ILogger<UpstreamProxy> _logger;
    private readonly HttpMessageInvoker _invoker;
    private readonly SessionBindings _sessions = new();
    private readonly UpstreamRoutes _routes = new();
    private readonly UpstreamTransformer _transformer;

    public UpstreamProxy(
        IHttpForwarder forwarder, McpGuardStateProvider states, IMcpGuardToolStatusStore statuses, IMcpGuardLedgerStore ledger, CreditGate credits,
        TimeProvider clock, ILogger<UpstreamProxy> logger)
    {
        _forwarder = forwarder;
        _states = states;
        _lists = new ToolListRewriter(statuses, ledger, clock);
        _credits = credits;
        _logger = logger;
        _invoker = UpstreamClient.Create(states.Current.Options.Upstream.ConnectTimeout);
        _transformer = new UpstreamTransformer(_sessions, _routes);
    }

    /// <summary>The protected-resource metadata at the paths <c>McpGuard:Auth:Resource</c> gives it; 404 at any other.</summary>
    public Task WriteMetadataAsync(HttpContext context)
    {
        var auth = _states.Current.Auth;
        if (ProtectedResourceMetadataEndpoint.Matches(context, auth))
        {
            return ProtectedResourceMetadataEndpoint.WriteAsync(context, auth);
        }

        context.Response.StatusCode = StatusCodes.Status404NotFound;
        return Task.CompletedTask;
    }

    public async Task ForwardAsync(HttpContext context)
    {
        var feature = context.Features.Get<McpGuardFeature>()
            ?? throw new InvalidOperationException("The McpGuard proxy runs only behind the guard (MapMcpGuardProxy adds RequireMcpGuard).");
        var state = feature.State;
        var upstream = state.Options.Upstream;
        var url = upstream.Url!;
        if (context.Features.Get<IHttpUpgradeFeature>()?.IsUpgradableRequest == true || context.Features.Get<IHttpExtendedConnectFeature>()?.IsExtendedConnect == true)
        {
            // An upgraded connection would carry frames past every gate: MCP has no use for one.
            throw new McpGuardEndpointException(new McpGuardError(state.Catalog[McpGuardReasons.InvalidRequest],
                "Invalid Request: the proxy does not forward protocol upgrades (Upgrade, extended CONNECT)."));
        }

        if (!HttpMethods.IsPost(context.Request.Method) && context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true)
        {
            // The front door reads POST bodies only: a body on GET or DELETE would reach the upstream unread by the guard.
            throw new McpGuardEndpointException(new McpGuardError(state.Catalog[McpGuardReasons.InvalidRequest],
                $"Invalid Request: a {context.Request.Method} to the MCP endpoint carries no body."));
        }

        if (FirstUnsendableHeader(context.Request.Headers) is { } header)
        {
            // Kestrel reads header bytes beyond ASCII as Latin-1; the HTTP client sends only visible ASCII (and spaces and
            // tabs), and an upstream could read those bytes otherwise. Refused, rather than passed on as something else.
            throw new McpGuardEndpointException(new McpGuardError(state.Catalog[McpGuardReasons.InvalidRequest],
                $"Invalid Request: the value of the {header} header has characters other than visible ASCII, spaces and tabs."));
        }

        if (feature.Envelope is { Id: var id } && id.IsUnsafeForJavaScript)
        {
            // An upstream in JavaScript reads an integer id beyond 2^53 - 1 as another number, and its answer would then
            // not be the answer to this request: the guard could neither settle the call nor filter its list.
            throw new McpGuardEndpointException(new McpGuardError(state.Catalog[McpGuardReasons.InvalidRequest],
                "Invalid Request: a numeric id must lie between -9007199254740991 and 9007199254740991 (an upstream in JavaScript reads larger ones as other numbers); use a string id.")
            {
                Id = id,
            });
        }

        var sessionIds = context.Request.Headers[UpstreamTransformer.SessionHeader];
        if (sessionIds.Count > 0 && (sessionIds.Count > 1 || !_sessions.IsOwnedBy(sessionIds[0]!, feature.Caller?.Account ?? SessionBindings.Anonymous)))
        {
            // Another caller's session, one this proxy never opened, or one that ended: the same answer for each, so that
            // nobody learns which session ids exist. Nothing reaches the upstream.
            throw new McpGuardEndpointException(new McpGuardError(state.Catalog[McpGuardReasons.SessionNotFound],
                "Session not found: the Mcp-Session-Id names no session of yours; start a new one with initialize."));
        }

        var route = _routes.For(state);
        var config = HttpMethods.IsGet(context.Request.Method) ? route.Streams : route.Calls;

        using var captured = ToolListRewriter.Rewrites(feature) ? new CapturedBody() : null;
        var body = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
        try
        {
            if (HttpMethods.IsPost(context.Request.Method))
            {
                // A POST's event stream loses its event ids on the way (a list held for filtering is written through it too).
                context.Features.Set<IHttpResponseBodyFeature>(new EventIdStrippingBody(body, context.Response));
            }

            var forwardBody = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
            ChargedAnswerBody? charged = null;
            if (captured is not null)
            {
                context.Features.Set<IHttpResponseBodyFeature>(captured);
            }
            else if (feature.Charge is not null && feature.Envelope is { IsToolCall: true })
            {
                // A priced call's answer carries its charge (ids are taken out after it: the answer's event keeps its fields).
                charged = new ChargedAnswerBody(forwardBody, context.Response, feature, _credits);
                context.Features.Set<IHttpResponseBodyFeature>(charged);
            }

            ForwarderError error;
            try
            {
                error = await _forwarder.SendAsync(context, url, _invoker, config, _transformer);
            }
            finally
            {
                context.Features.Set(forwardBody);
            }

            if (error != ForwarderError.None)
            {
                Fail(context, feature, error, url, upstream.ResponseTimeout);
                return;
            }

            if (context.Features.Get<EncodedAnswer>() is not null)
            {
                throw new McpGuardEndpointException(new McpGuardError(state.Catalog[McpGuardReasons.UpstreamError],
                    "Upstream error: the MCP server sent its answer compressed (Content-Encoding), which the guard cannot read; it was not passed on."));
            }

            if (captured is not null)
            {
                await _lists.WriteAsync(context, feature, captured);
            }

            if (charged is not null)
            {
                await charged.FinishAsync(context.RequestAborted);
            }
        }
        finally
        {
            context.Features.Set(body);
        }
    }

    /// <summary>
    /// After YARP reports a failure: nothing more to say when the response already started (YARP ended it) or the
    /// request was cancelled (the client left, or the charged call's time ran out: the settlement answers that);
    /// otherwise the call gets the catalog's answer for it.
    /// </summary>
    private void Fail(HttpContext context, McpGuardFeature feature, ForwarderError error, string url, TimeSpan responseTimeout)
    {
        var exception = context.GetForwarderErrorFeature()?.Exception;
        Log.ForwardFailed(_logger, feature.RequestId, error, url, exception);
        context.RequestAborted.ThrowIfCancellationRequested();
        if (context.Response.HasStarted)
        {
            return;
        }

        if (error == ForwarderError.RequestBodyClient)
        {
            // The client's own body could not be read (the front door buffers POST bodies, so this is no POST's).
            throw new McpGuardEndpointException(new McpGuardError(feature.State.Catalog[McpGuardReasons.InvalidRequest], "Invalid Request: the request body could not be read."), exception);
        }

        // The request was not cancelled (that threw above): a cancelled step is YARP's activity timeout, before the
        // response headers or between two chunks of a body the guard still holds.
        var catalog = feature.State.Catalog;
        // YARP reports a read from the upstream cut short by that timeout as a failed read, its exception a cancellation.
        var timedOut = error is ForwarderError.RequestTimedOut or ForwarderError.RequestCanceled or ForwarderError.ResponseBodyCanceled or ForwarderError.RequestBodyCanceled
            || exception is OperationCanceledException || exception?.InnerException is OperationCanceledException;
        throw timedOut
            ? new McpGuardEndpointException(new McpGuardError(catalog[McpGuardReasons.UpstreamTimeout],
                $"Upstream timeout: the MCP server sent nothing for {responseTimeout.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s; nothing was charged."), exception)
            : new McpGuardEndpointException(new McpGuardError(catalog[McpGuardReasons.UpstreamError],
                "Upstream error: the MCP server could not be reached or did not answer; nothing was charged."), exception);
    }

    /// <summary>The name of the first header whose value is not visible ASCII, spaces and tabs; null when all are.</summary>
    private static string? FirstUnsendableHeader(IHeaderDictionary headers)
    {
        foreach (var (name, values) in headers)
        {
            foreach (var value in values)
            {
                if (!(value ?? string.Empty).All(HttpSyntax.IsFieldValueChar))
                {
                    // Only a name Kestrel accepted, which is a token: safe to name in the answer.
                    return name;
                }
            }
        }

        return null;
    }

    public void Dispose() => _invoker.Dispose();

    private static partial class Log
    {
        [LoggerMessage(9001, LogLevel.Warning, "Forwarding request {RequestId} to {Upstream} failed: {Error}.", EventName = "ForwardFailed")]
        public static partial void ForwardFailed(ILogger logger, string requestId, ForwarderError error, string upstream, Exception? exception);
    }
}
