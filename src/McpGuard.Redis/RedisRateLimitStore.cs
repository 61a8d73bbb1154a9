using System.Runtime.CompilerServices;
using McpGuard.RateLimiting;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace McpGuard.Redis;

/// <summary>
/// Rate-limit counters on Redis, shared by every instance. Each call is one <c>EVALSHA</c> of
/// <see cref="RedisRateLimitScript"/>: every window checked, then one permit of each spent only if all have one, on
/// Redis's clock. Keys are <c>{KeyPrefix}{&lt;partition&gt;}:&lt;policy&gt;:&lt;window&gt;</c> (plus
/// <c>:tool:&lt;tool&gt;</c> for per-tool windows), so one caller's keys share a Cluster slot, and each expires with its window.
/// Connects on first use, and never fails start-up: while Redis is down each call throws, and
/// <c>McpGuard:RateLimits:OnStoreFailure</c> decides.
/// </summary>
internal sealed class RedisRateLimitStore : IMcpGuardRateLimitStore, IHealthCheck, IAsyncDisposable, IDisposable
{
    private readonly string _configuration;
    private readonly string _keyPrefix;
    private readonly TimeSpan _timeout;
    private readonly Lock _lock = new();
    private readonly ConditionalWeakTable<IReadOnlyList<McpGuardRateLimiterWindow>, RedisRateLimitScript.Plan> _plans = [];
    private Task<ConnectionMultiplexer>? _connecting;
    private IDatabase? _database;
    private bool _disposed;

    public RedisRateLimitStore(McpGuardStateProvider states)
        : this(states.Current.Options.Redis.Configuration ?? "", states.Current.Options.Redis.KeyPrefix, states.Current.Options.StoreTimeout)
    {
    }

    internal RedisRateLimitStore(string configuration, string keyPrefix, TimeSpan timeout)
    {
        _configuration = configuration;
        _keyPrefix = keyPrefix;
        _timeout = timeout;
    }

    public ValueTask<McpGuardRateLimitResult> AcquireAsync(McpGuardRateLimitRequest request, CancellationToken cancellationToken) =>
        AcquireAsync(request, now: null, cancellationToken);

    /// <summary>
    /// As <see cref="AcquireAsync(McpGuardRateLimitRequest, CancellationToken)"/>; tests may pass <paramref name="now"/> (whole
    /// microseconds since the epoch) to run the script on a clock of their own. Keys then get no expiry (the test's clock is not Redis's).
    /// </summary>
    internal async ValueTask<McpGuardRateLimitResult> AcquireAsync(McpGuardRateLimitRequest request, long? now, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        cancellationToken.ThrowIfCancellationRequested();
        var plan = PlanOf(request);
        var keys = Keys(plan, request);
        var arguments = request.Spend ? plan.Spend : plan.Read;
        if (now is { } micros)
        {
            arguments = (RedisValue[])arguments.Clone();
            arguments[1] = micros;
        }

        var database = _database ?? await ConnectAsync(cancellationToken);
        RedisResult answer;
        try
        {
            answer = await database.ScriptEvaluateAsync(RedisRateLimitScript.Hash, keys, arguments).WaitAsync(cancellationToken);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            // Redis restarted (or SCRIPT FLUSH): EVAL sends the script's text once, and Redis keeps it for the EVALSHAs that follow.
            answer = await database.ScriptEvaluateAsync(RedisRateLimitScript.Text, keys, arguments).WaitAsync(cancellationToken);
        }

        return Result(plan, answer);
    }

    /// <summary>
    /// <c>{KeyPrefix}{&lt;partition&gt;}:&lt;policy&gt;:&lt;window&gt;</c>, plus <c>:tool:&lt;tool&gt;</c> for per-tool windows: one
    /// string per window, built in one go (the escaping allocates only for text that has a brace or a percent sign).
    /// </summary>
    private RedisKey[] Keys(RedisRateLimitScript.Plan plan, McpGuardRateLimitRequest request)
    {
        var partition = RedisRateLimitScript.Escape(request.Partition);
        var tool = request.Tool is { } name ? RedisRateLimitScript.Escape(name) : null;
        var keys = new RedisKey[plan.Windows.Length];
        for (var i = 0; i < keys.Length; i++)
        {
            keys[i] = plan.Windows[i].PerTool && tool is not null
                ? string.Concat([_keyPrefix, "{", partition, "}", plan.Suffixes[i], ":tool:", tool])
                : string.Concat([_keyPrefix, "{", partition, "}", plan.Suffixes[i]]);
        }

        return keys;
    }

    /// <summary>The keys a request uses (for tests and the docs: what an operator finds in Redis).</summary>
    internal IReadOnlyList<string> KeysOf(McpGuardRateLimitRequest request) =>
        [.. Keys(PlanOf(request), request).Select(key => (string)key!)];

    /// <summary>The plan of a request's chain of windows, made once per chain (McpGuard passes one window list per chain).</summary>
    private RedisRateLimitScript.Plan PlanOf(McpGuardRateLimitRequest request) =>
        _plans.GetValue(request.Windows, static windows => new RedisRateLimitScript.Plan(windows));

    private static McpGuardRateLimitResult Result(RedisRateLimitScript.Plan plan, RedisResult answer)
    {
        var values = (RedisResult[])answer!;
        if (values is null || values.Length != 2 + (2 * plan.Windows.Length))
        {
            throw new InvalidOperationException($"The rate-limit script answered {values?.Length ?? 0} values for {plan.Windows.Length} windows.");
        }

        var acquired = (long)values[0] == 1;
        // Redis's clock, not this instance's: the resets are the same on every instance.
        var now = DateTimeOffset.UnixEpoch.AddTicks((long)values[1] * 10);
        var windows = new McpGuardRateLimitWindowState[plan.Windows.Length];
        for (var i = 0; i < windows.Length; i++)
        {
            var window = plan.Windows[i];
            var available = (long)values[2 + (2 * i)];
            var wait = (long)values[3 + (2 * i)];
            var retryAfter = wait <= 0
                ? TimeSpan.Zero
                : window.Algorithm == McpGuardRateLimitAlgorithm.TokenBucket
                    ? plan.TokenWait(i, wait)
                    : TimeSpan.FromTicks(wait * 10);
            windows[i] = new McpGuardRateLimitWindowState(available, ClockedRateLimiter.TimeToReset(window, now), retryAfter);
        }

        return new McpGuardRateLimitResult(acquired, windows);
    }

    /// <summary>PING, within <c>McpGuard:StoreTimeout</c>.</summary>
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(_timeout);
            var database = _database ?? await ConnectAsync(timeout.Token);
            var latency = await database.PingAsync().WaitAsync(timeout.Token);
            return HealthCheckResult.Healthy($"Redis answered PING in {latency.TotalMilliseconds:0.#} ms.");
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            return HealthCheckResult.Unhealthy("Redis did not answer PING within McpGuard:StoreTimeout.", ex);
        }
    }

    /// <summary>
    /// Connects once (later calls share the attempt). With <c>AbortOnConnectFail</c> off the multiplexer exists even while
    /// Redis is down and reconnects on its own; a failed attempt (a bad configuration string, say) is tried again by the next call.
    /// </summary>
    private async Task<IDatabase> ConnectAsync(CancellationToken cancellationToken)
    {
        Task<ConnectionMultiplexer> connecting;
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_connecting is null || _connecting.IsFaulted || _connecting.IsCanceled)
            {
                _connecting = Connect();
            }

            connecting = _connecting;
        }

        var connection = await connecting.WaitAsync(cancellationToken);
        return _database ??= connection.GetDatabase();
    }

    private Task<ConnectionMultiplexer> Connect()
    {
        var options = ConfigurationOptions.Parse(_configuration);
        options.AbortOnConnectFail = false;
        var milliseconds = (int)Math.Clamp(_timeout.TotalMilliseconds, 1, int.MaxValue);
        options.ConnectTimeout = milliseconds;
        options.SyncTimeout = milliseconds;
        options.AsyncTimeout = milliseconds;
        options.ClientName ??= "mcpguard";
        return ConnectionMultiplexer.ConnectAsync(options);
    }

    /// <summary>For a container disposed synchronously: closes the connection if there is one.</summary>
    public void Dispose()
    {
        Task<ConnectionMultiplexer>? connecting;
        lock (_lock)
        {
            _disposed = true;
            connecting = _connecting;
        }

        if (connecting is { IsCompletedSuccessfully: true })
        {
            connecting.Result.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        Task<ConnectionMultiplexer>? connecting;
        lock (_lock)
        {
            _disposed = true;
            connecting = _connecting;
        }

        if (connecting is null)
        {
            return;
        }

        try
        {
            await (await connecting).DisposeAsync();
        }
        catch (Exception) when (connecting.IsFaulted)
        {
            // Never connected: nothing to close.
        }
    }
}
