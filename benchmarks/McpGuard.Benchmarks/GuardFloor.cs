using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using McpGuard.Credits;
using McpGuard.PostgreSql;
using McpGuard.Protocol;
using McpGuard.RateLimiting;
using McpGuard.Redis;
using McpGuard.Sample;
using McpGuard.Storage;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace McpGuard.Benchmarks;

/// <summary>
/// The least a priced call can cost in front of the C# SDK's <c>MapMcp()</c> under the design issue #11 asks for, with
/// none of McpGuard's own gates: the sample's MCP server and tools, and in front of them only (1) an ASP.NET Core
/// authentication scheme that finds an API key by its SHA-256 (keys are stored hashed) and makes a principal of it, and
/// (2) a durable charge of 800 µ on McpGuard's SQLite ledger (the same <c>LedgerEngine</c> and journal), committed before
/// the endpoint runs. No body is parsed (every <c>POST</c> is charged as <c>add</c>), no rate limit, no settlement, no
/// refund, no charge headers or <c>_meta</c>, no telemetry: everything McpGuard does beyond this costs more, so what this
/// server adds to the unguarded sample is a floor under what McpGuard can add. With <c>--postgres</c> and <c>--redis</c>
/// (issue #12) the charge is on McpGuard's PostgreSQL ledger store and each call also spends its windows on Redis with
/// McpGuard's rate-limit store. <c>benchmarks/compare.sh</c> starts it with <c>GUARDED=floor</c>:
/// <c>guard-floor --urls http://127.0.0.1:5703 --ledger /tmp/floor.db [--postgres &lt;connection string&gt; --redis &lt;configuration&gt;]</c>.
/// </summary>
internal static class GuardFloor
{
    private const string KeyScheme = "floor-key";

    // The demo key's hash (mcpg_demo_alice), as in the sample's appsettings.json.
    private static readonly byte[] AliceKeyHash = Convert.FromHexString("f1911f32d0418f84581e05118df2d3ae638f8fc2b7e8ebf1f0c2a843c9c45cc1");

    public static async Task<int> RunAsync(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args[1..]);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddAuthentication().AddScheme<AuthenticationSchemeOptions, KeyHandler>(KeyScheme, null);
        builder.Services.AddMcpServer().WithHttpTransport().WithTools<SampleTools>();
        var ledgerPath = builder.Configuration["ledger"] ?? throw new ArgumentException("guard-floor needs --ledger <path of a new SQLite file>");
        // To take the floor apart: --auth false (no authentication), --charge false (no charge), --journal memory (the
        // ledger's in-memory journal instead of SQLite), --recent N (how many charges the ledger holds by request id), --defer true
        // (the charge waited for after the endpoint instead of before it), --tool echo (the Redis windows of a free call).
        var authenticate = builder.Configuration.GetValue("auth", defaultValue: true);
        var charged = builder.Configuration.GetValue("charge", defaultValue: true);
        var deferred = builder.Configuration.GetValue("defer", defaultValue: false);
        var clock = TimeProvider.System;
        var recent = builder.Configuration.GetValue("recent", LedgerEngine.DefaultRecentCapacity);
        IMcpGuardLedgerStore ledger = builder.Configuration["postgres"] is { Length: > 0 } postgres
            ? new PostgreSqlLedgerStore(new PostgreSqlDatabase(postgres, "mcpguard_floor", TimeSpan.FromSeconds(2), NullLogger.Instance), clock, NullLogger.Instance)
            : new LedgerEngine(builder.Configuration["journal"] == "memory" ? new InMemoryJournal() : new SqliteJournal(new SqliteDatabase(ledgerPath)), clock, NullLogger.Instance, recent);
        await using var disposeLedger = (IAsyncDisposable)ledger;
        await ledger.TopUpAsync("alice", 1_000_000_000_000, "floor", clock.GetUtcNow(), CancellationToken.None);

        // --redis <configuration>: each call also checks and spends its windows on Redis, in McpGuard's one script and round
        // trip, as in the sample (raised so they never refuse): for add (--tool add, the default) add-1m, default-1m and
        // default-1d; for any other tool (--tool echo) the default policy's two.
        await using var limits = builder.Configuration["redis"] is { Length: > 0 } redis ? new RedisRateLimitStore(redis, "mcpguard:", TimeSpan.FromSeconds(2)) : null;
        var tool = builder.Configuration["tool"] ?? "add";
        McpGuardRateLimiterWindow[] windows =
        [
            .. tool == "add" ? [new McpGuardRateLimiterWindow("add", "add-1m", McpGuardRateLimitAlgorithm.FixedWindow, 100_000_000, TimeSpan.FromMinutes(1), 1, perTool: true)] : Array.Empty<McpGuardRateLimiterWindow>(),
            new("default", "default-1m", McpGuardRateLimitAlgorithm.FixedWindow, 100_000_000, TimeSpan.FromMinutes(1), 1),
            new("default", "default-1d", McpGuardRateLimitAlgorithm.FixedWindow, 100_000_000, TimeSpan.FromDays(1), 1),
        ];

        var app = builder.Build();
        app.Use(async (context, next) =>
        {
            if (authenticate)
            {
                var result = await context.AuthenticateAsync(KeyScheme);
                if (!result.Succeeded)
                {
                    context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                    return;
                }

                context.User = result.Principal;
                context.Request.Headers.Authorization = default;
            }

            if (limits is not null && HttpMethods.IsPost(context.Request.Method))
            {
                var permit = await limits.AcquireAsync(new McpGuardRateLimitRequest("account:alice", tool, windows, spend: true), context.RequestAborted);
                if (!permit.Acquired)
                {
                    context.Response.StatusCode = StatusCodes.Status429TooManyRequests;
                    return;
                }
            }

            if (charged && deferred && HttpMethods.IsPost(context.Request.Method))
            {
                // Not a guard (the response goes out before the charge is durable): what waiting later instead of first would save.
                var pending = ledger.ChargeAsync(new McpGuardChargeRequest("alice", RequestIds.NewId(), "add", 800, 0, clock.GetUtcNow(), newRequestId: true), context.RequestAborted).AsTask();
                await next(context);
                await pending;
                return;
            }

            if (charged && HttpMethods.IsPost(context.Request.Method))
            {
                var charge = await ledger.ChargeAsync(new McpGuardChargeRequest("alice", RequestIds.NewId(), "add", 800, 0, clock.GetUtcNow(), newRequestId: true), context.RequestAborted);
                if (charge.Outcome != McpGuardChargeOutcome.Charged)
                {
                    context.Response.StatusCode = StatusCodes.Status402PaymentRequired;
                    return;
                }
            }

            await next(context);
        });
        app.MapMcp("/mcp");
        await app.RunAsync();
        return 0;
    }

    /// <summary>An API key sent as a bearer token, found by its SHA-256 and compared in constant time.</summary>
    private sealed class KeyHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder)
        : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
    {
        protected override Task<AuthenticateResult> HandleAuthenticateAsync()
        {
            var header = Request.Headers.Authorization.ToString();
            if (!header.StartsWith("Bearer ", StringComparison.Ordinal) || header.Length > 200)
            {
                return Task.FromResult(AuthenticateResult.NoResult());
            }

            Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
            Span<byte> key = stackalloc byte[Encoding.UTF8.GetMaxByteCount(200)];
            var length = Encoding.UTF8.GetBytes(header.AsSpan(7).Trim(), key);
            SHA256.HashData(key[..length], hash);
            if (!CryptographicOperations.FixedTimeEquals(hash, AliceKeyHash))
            {
                return Task.FromResult(AuthenticateResult.Fail("invalid key"));
            }

            var identity = new ClaimsIdentity(KeyScheme, "sub", ClaimsIdentity.DefaultRoleClaimType);
            identity.AddClaim(new Claim("sub", "alice"));
            identity.AddClaim(new Claim("scope", "tools:basic"));
            identity.AddClaim(new Claim("scope", "tools:premium"));
            return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), KeyScheme)));
        }
    }
}
