using System.Diagnostics;
using System.Diagnostics.Metrics;
using McpGuard.Protocol;

namespace McpGuard.Telemetry;

/// <summary>
/// McpGuard's instruments (meter <c>McpGuard</c>, made through the app's <see cref="IMeterFactory"/>) and its traces
/// (<see cref="ActivitySource"/> <c>McpGuard</c>). Tag values come from bounded sets (<see cref="TelemetryNames"/>); an
/// account id is a tag only when <c>McpGuard:Telemetry:AccountTags</c> is true. Every instrument costs one check when
/// nothing listens.
/// </summary>
internal sealed class McpGuardTelemetry
{
    /// <summary>The name of the meter and of the activity source.</summary>
    public const string Name = "McpGuard";

    /// <summary>McpGuard's spans: one per guarded request, with children for store calls.</summary>
    public static readonly ActivitySource Source = new(Name, typeof(McpGuardTelemetry).Assembly.GetName().Version?.ToString(3));

    /// <summary>Tag names, after the OpenTelemetry MCP and gen-ai conventions where they have one.</summary>
    public static class Tags
    {
        public const string Method = "mcp.method.name";
        public const string Tool = "gen_ai.tool.name";
        public const string Operation = "gen_ai.operation.name";
        public const string SessionId = "mcp.session.id";
        public const string ProtocolVersion = "mcp.protocol.version";
        public const string JsonRpcId = "jsonrpc.request.id";
        public const string ErrorType = "error.type";
        public const string Outcome = "mcpguard.outcome";
        public const string Reason = "mcpguard.reason";
        public const string RequestId = "mcpguard.request_id";
        public const string Account = "mcpguard.account";
        public const string Policy = "mcpguard.rate_limit.policy";
        public const string Store = "mcpguard.store";
        public const string StoreOperation = "db.operation.name";
        public const string ChargeOutcome = "mcpguard.charge.outcome";
    }

    /// <summary>The values of <see cref="Tags.Outcome"/> on a request.</summary>
    public static class Outcomes
    {
        /// <summary>The gates let the request through to the endpoint, which answered it.</summary>
        public const string Passed = RecentTraffic.Passed;

        /// <summary>A gate refused the request (reason in <see cref="Tags.Reason"/>); the endpoint never saw it.</summary>
        public const string Refused = "refused";

        /// <summary>The request passed the gates and could not be served: the upstream failed or did not answer in time, or McpGuard failed (reason in <see cref="Tags.Reason"/>).</summary>
        public const string Failed = "failed";

        /// <summary>The client went away before McpGuard decided (while its body was still arriving, say).</summary>
        public const string Abandoned = "abandoned";

        /// <summary>
        /// The outcome of a request the gates let through: <see cref="Passed"/> when the endpoint answered; when McpGuard
        /// answered in its place, <see cref="Refused"/> for a 4xx (the proxy refusing a request it will not forward, such
        /// as another caller's session) and <see cref="Failed"/> for a 5xx.
        /// </summary>
        public static string Of(Errors.McpGuardErrorDescriptor? answeredInstead) => answeredInstead switch
        {
            null => Passed,
            { StatusCode: < 500 } => Refused,
            _ => Failed,
        };
    }

    /// <summary>
    /// Whether a reason is a fault (something failed, McpGuard or what it depends on) rather than a decision: the span of a
    /// request refused for such a reason gets an error status. A paused tool's 503 is a decision, so it is not one.
    /// </summary>
    public static bool IsFault(string? reason) => reason is McpGuardReasons.InternalError or McpGuardReasons.LedgerUnavailable
        or McpGuardReasons.LimiterUnavailable or McpGuardReasons.UpstreamError or McpGuardReasons.UpstreamTimeout;

    private static readonly double[] GuardSeconds = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
    private static readonly long[] BatchSizes = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

    private readonly Counter<long> _requests;
    private readonly Histogram<double> _guardDuration;
    private readonly Counter<long> _charged;
    private readonly Counter<long> _refunded;
    private readonly Counter<long> _rateLimitRejections;
    private readonly Counter<long> _rateLimitStoreFailures;
    private readonly Histogram<double> _commitDuration;
    private readonly Histogram<long> _commitBatch;
    private readonly Counter<long> _storeErrors;

    private readonly RecentTraffic _traffic;

    public McpGuardTelemetry(IMeterFactory meters, RecentTraffic traffic)
    {
        _traffic = traffic;
        var meter = meters.Create(new MeterOptions(Name) { Version = Source.Version });
        _requests = meter.CreateCounter<long>("mcpguard.requests", "{request}",
            "Guarded requests, by MCP method, tool, outcome (passed, refused, failed) and reason.");
        _guardDuration = meter.CreateHistogram("mcpguard.guard.duration", "s",
            "McpGuard's own time per request: from the request reaching the guard to its decision, without the endpoint's time.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = GuardSeconds });
        _charged = meter.CreateCounter<long>("mcpguard.credits.charged", "{micro-unit}",
            "Micro-units charged to callers' balances when a priced call was let through, by tool.");
        _refunded = meter.CreateCounter<long>("mcpguard.credits.refunded", "{micro-unit}",
            "Micro-units given back for priced calls the server did not serve, by tool.");
        _rateLimitRejections = meter.CreateCounter<long>("mcpguard.rate_limit.rejections", "{request}",
            "Calls refused with 429 rate_limited, by the policy whose window ran out.");
        _rateLimitStoreFailures = meter.CreateCounter<long>("mcpguard.rate_limit.store_failures", "{call}",
            "Counted calls the shared rate-limit store did not answer for, by what they got (passed under FailOpen, refused under FailClosed).");
        _commitDuration = meter.CreateHistogram("mcpguard.ledger.commit.duration", "s",
            "Time of one ledger commit (a group of charges and refunds written in one transaction).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = GuardSeconds });
        _commitBatch = meter.CreateHistogram("mcpguard.ledger.commit.batch_size", "{operation}",
            "Charges, refunds and other ledger writes committed together in one transaction.",
            advice: new InstrumentAdvice<long> { HistogramBucketBoundaries = BatchSizes });
        _storeErrors = meter.CreateCounter<long>("mcpguard.store.errors", "{error}",
            "Calls to a store (ledger, rate_limit, api_keys, account_status, tool_status) that failed or timed out, by store and operation.");
    }

    /// <summary>The caller's account as a tag value: only when <c>McpGuard:Telemetry:AccountTags</c> allows it.</summary>
    public static string? Account(McpGuardFeature feature) =>
        feature.State.Options.Telemetry.AccountTags ? feature.Caller?.Account : null;

    /// <summary>Counts one guarded request and the guard's time on it.</summary>
    public void RequestEnded(string method, string? tool, string outcome, string? reason, string? account, double guardSeconds)
    {
        if (outcome != Outcomes.Abandoned)
        {
            _traffic.Record(method, tool, reason ?? outcome);
        }

        if (_requests.Enabled)
        {
            var tags = new TagList
            {
                { Tags.Method, method },
                { Tags.Outcome, outcome },
            };
            if (tool is not null)
            {
                tags.Add(Tags.Tool, tool);
            }

            if (reason is not null)
            {
                tags.Add(Tags.Reason, reason);
            }

            if (account is not null)
            {
                tags.Add(Tags.Account, account);
            }

            _requests.Add(1, tags);
        }

        if (_guardDuration.Enabled && outcome != Outcomes.Abandoned)
        {
            _guardDuration.Record(guardSeconds, new KeyValuePair<string, object?>(Tags.Method, method), new KeyValuePair<string, object?>(Tags.Outcome, outcome == Outcomes.Refused ? outcome : Outcomes.Passed));
        }
    }

    /// <summary>Counts micro-units charged for the request's call.</summary>
    public void Charged(McpGuardFeature feature, long amountMicro) => Money(_charged, feature, amountMicro);

    /// <summary>Counts micro-units refunded for the request's call, which the server did not serve.</summary>
    public void Refunded(McpGuardFeature feature, long amountMicro) => Money(_refunded, feature, amountMicro);

    /// <summary>Counts one 429 from the window of <paramref name="policy"/> (a policy name from configuration).</summary>
    public void RateLimited(string policy) => _rateLimitRejections.Add(1, new KeyValuePair<string, object?>(Tags.Policy, policy));

    /// <summary>Counts one counted call the shared rate-limit store did not answer for (the store error itself is its <see cref="StoreCall"/>'s).</summary>
    public void RateLimitStoreFailed(bool passed) =>
        _rateLimitStoreFailures.Add(1, new KeyValuePair<string, object?>(Tags.Outcome, passed ? Outcomes.Passed : Outcomes.Refused));

    /// <summary>Counts one failed or timed-out call to a store. Never throws (see <see cref="Safely"/>).</summary>
    public void StoreFailed(string store, string operation) => Safely(() =>
        _storeErrors.Add(1, new KeyValuePair<string, object?>(Tags.Store, store), new KeyValuePair<string, object?>(Tags.StoreOperation, operation)));

    /// <summary>Records one ledger commit of <paramref name="batchSize"/> writes that took <paramref name="seconds"/>. Never throws.</summary>
    public void LedgerCommitted(int batchSize, double seconds) => Safely(() =>
    {
        _commitDuration.Record(seconds);
        _commitBatch.Record(batchSize);
    });

    /// <summary>
    /// Records a measurement from a ledger's writer or a failure path: a metrics listener runs inside <c>Add</c> and
    /// <c>Record</c>, and one that throws must not stop a writer or replace the failure being reported.
    /// </summary>
    private static void Safely(Action record)
    {
        try
        {
            record();
        }
        catch (Exception)
        {
            // The listener's failure is the listener's own: McpGuard goes on.
        }
    }

    /// <summary>
    /// One store call: a child span (when something listens) and, through <see cref="StoreCallScope.Fail"/>, a count in
    /// <c>mcpguard.store.errors</c>. <c>using var call = telemetry.StoreCall("api_keys", "find");</c>
    /// </summary>
    public StoreCallScope StoreCall(string store, string operation) => new(this, StartStoreCall(store, operation), store, operation);

    /// <summary>A child span for one store call (<c>McpGuard {store} {operation}</c>) when something listens.</summary>
    private static Activity? StartStoreCall(string store, string operation)
    {
        if (!Source.HasListeners())
        {
            return null;
        }

        var activity = Source.StartActivity($"McpGuard {store} {operation}", ActivityKind.Internal);
        activity?.SetTag(Tags.Store, store);
        activity?.SetTag(Tags.StoreOperation, operation);
        return activity;
    }

    /// <summary>Marks <paramref name="activity"/> failed by <paramref name="exception"/>.</summary>
    public static void Failed(Activity? activity, Exception exception)
    {
        if (activity is null)
        {
            return;
        }

        activity.SetStatus(ActivityStatusCode.Error, exception.Message);
        activity.SetTag(Tags.ErrorType, exception.GetType().FullName);
        activity.AddException(exception);
    }

    private static void Money(Counter<long> counter, McpGuardFeature feature, long amountMicro)
    {
        if (amountMicro <= 0 || !counter.Enabled)
        {
            return;
        }

        var tags = new TagList();
        if (TelemetryNames.Tool(feature.Envelope, feature.State) is { } tool)
        {
            tags.Add(Tags.Tool, tool);
        }

        if (Account(feature) is { } account)
        {
            tags.Add(Tags.Account, account);
        }

        counter.Add(amountMicro, tags);
    }
}

/// <summary>A store call in progress (see <see cref="McpGuardTelemetry.StoreCall"/>): dispose it when the call ends.</summary>
internal readonly struct StoreCallScope(McpGuardTelemetry? telemetry, Activity? span, string store, string operation) : IDisposable
{
    /// <summary>The call's span, when something listens.</summary>
    public Activity? Span => span;

    /// <summary>The call failed or timed out: marks the span and counts the error.</summary>
    public void Fail(Exception exception)
    {
        McpGuardTelemetry.Failed(span, exception);
        telemetry?.StoreFailed(store, operation);
    }

    public void Dispose() => span?.Dispose();
}
