using System.Net;
using McpGuard.Credits;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace McpGuard.Tests.Credits;

/// <summary>
/// A ledger that stops answering (a store of one's own, or PostgreSQL) never leaves a charge standing for a call the
/// server did not serve: a refund the ledger fails is retried until it answers, and a charge the ledger was too slow to
/// confirm (the caller got 503 ledger_unavailable) is refunded even when it lands late.
/// </summary>
public sealed class LedgerOutageTests
{
    private const long Price = 700;
    private const long Balance = 10_000;
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task A_refund_the_ledger_fails_is_retried_until_it_lands()
    {
        var ledger = new FlakyLedger { RefundFailures = 2 };
        await using var host = await StartAsync(ledger, async context =>
        {
            context.Response.StatusCode = StatusCodes.Status502BadGateway;
            await context.Response.WriteAsync("upstream broke");
        });

        using var response = await host.Client.SendAsync(CreditCalls.Post(CreditCalls.ToolCall(1, "work", "{}"), DemoKeys.Alice, "outage-refund"));

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
        var settled = await host.Logs.WaitForAsync(6104, Bound);
        Assert.Equal("Refund of request outage-refund (status 502) settled after 3 attempts; refunded: True.", settled.Message);
        Assert.Equal(2, host.Logs.Entries.Count(e => e.EventId.Id == 6103));
        Assert.Equal(Balance, (await ledger.Inner.GetAccountAsync("alice", 0, DateTimeOffset.UtcNow, default))!.BalanceMicro);
        Assert.Equal(0, host.Services.GetRequiredService<RefundRetry>().PendingCount);
    }

    [Fact]
    public async Task A_charge_that_lands_after_the_store_timeout_is_refunded_and_the_caller_got_503()
    {
        var ledger = new FlakyLedger { ChargeDelay = TimeSpan.FromMilliseconds(900) };
        var served = 0;
        await using var host = await StartAsync(ledger, async context =>
        {
            Interlocked.Increment(ref served);
            await context.Response.WriteAsync("never reached");
        });

        using var response = await host.Client.SendAsync(CreditCalls.Post(CreditCalls.ToolCall(1, "work", "{}"), DemoKeys.Alice, "outage-late"));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("1", Assert.Single(response.Headers.GetValues("Retry-After")));
        Assert.Equal(0, served);

        // The charge landed about 0.7 s after the caller was refused; the refund watches for it and gives it back.
        var settled = await host.Logs.WaitForAsync(6104, Bound);
        Assert.StartsWith("Refund of request outage-late (ledger unavailable while charging) settled after ", settled.Message, StringComparison.Ordinal);
        Assert.EndsWith(" attempts; refunded: True.", settled.Message, StringComparison.Ordinal);
        Assert.Equal(1, ledger.ChargesLanded);
        var rows = (await ledger.Inner.GetLedgerAsync("alice", null, 10, default)).Entries;
        Assert.Equal(
            [(McpGuardLedgerEntryKind.Refund, Price), (McpGuardLedgerEntryKind.Usage, -Price), (McpGuardLedgerEntryKind.TopUp, Balance)],
            rows.Select(r => (r.Kind, r.AmountMicro)));
        Assert.Equal(Balance, rows[0].BalanceAfterMicro);
    }

    private static Task<GuardedHost> StartAsync(FlakyLedger ledger, RequestDelegate endpoint) =>
        GuardedHost.StartAsync(
            builder =>
            {
                builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
                builder.Services.AddSingleton<IMcpGuardLedgerStore>(ledger);
            },
            app =>
            {
                app.UseMcpGuard();
                app.MapPost("/mcp", endpoint);
            },
            GuardConfiguration.ApiKeys(GuardConfiguration.Alice())
                .WithCredits("InMemory", ("alice", Balance))
                .With(new Dictionary<string, string?>
                {
                    ["McpGuard:Tools:work:Price"] = Price.ToString(System.Globalization.CultureInfo.InvariantCulture),
                    ["McpGuard:StoreTimeout"] = "00:00:00.2",
                }));

    /// <summary>
    /// McpGuard's in-memory ledger behind a store of one's own that fails on demand: refunds that throw, and charges that
    /// take longer than the caller waits yet still land (as a remote database commits a statement its client gave up on).
    /// </summary>
    private sealed class FlakyLedger : IMcpGuardLedgerStore
    {
        private int _refundFailures;
        private int _landed;

        public LedgerEngine Inner { get; } = new(new InMemoryJournal(), TimeProvider.System, NullLogger.Instance);

        public int RefundFailures { get => _refundFailures; init => _refundFailures = value; }

        public TimeSpan ChargeDelay { get; init; }

        public int ChargesLanded => Volatile.Read(ref _landed);

        public ValueTask<bool> SeedAsync(IReadOnlyList<McpGuardAccountSeed> seeds, DateTimeOffset now, CancellationToken cancellationToken) =>
            Inner.SeedAsync(seeds, now, cancellationToken);

        public async ValueTask<McpGuardChargeResult> ChargeAsync(McpGuardChargeRequest request, CancellationToken cancellationToken)
        {
            if (ChargeDelay > TimeSpan.Zero)
            {
                // The caller stops waiting at its timeout; the charge lands anyway, later.
                _ = Task.Run(async () =>
                {
                    await Task.Delay(ChargeDelay, CancellationToken.None);
                    await Inner.ChargeAsync(request, CancellationToken.None);
                    Interlocked.Increment(ref _landed);
                }, CancellationToken.None);
                await Task.Delay(Timeout.Infinite, cancellationToken);
            }

            return await Inner.ChargeAsync(request, cancellationToken);
        }

        public ValueTask<bool> RefundAsync(string requestId, DateTimeOffset now, CancellationToken cancellationToken) =>
            Interlocked.Decrement(ref _refundFailures) >= 0
                ? throw new IOException("connection refused")
                : Inner.RefundAsync(requestId, now, cancellationToken);

        public ValueTask<McpGuardLedgerEntry> TopUpAsync(string account, long amountMicro, string? note, DateTimeOffset now, CancellationToken cancellationToken) =>
            Inner.TopUpAsync(account, amountMicro, note, now, cancellationToken);

        public ValueTask<McpGuardLedgerEntry> AdjustAsync(string account, long amountMicro, string note, DateTimeOffset now, CancellationToken cancellationToken) =>
            Inner.AdjustAsync(account, amountMicro, note, now, cancellationToken);

        public ValueTask<McpGuardAccount?> GetAccountAsync(string account, int freeCallsPerMonth, DateTimeOffset now, CancellationToken cancellationToken) =>
            Inner.GetAccountAsync(account, freeCallsPerMonth, now, cancellationToken);

        public ValueTask SetMonthlyCapAsync(string account, long? capMicro, CancellationToken cancellationToken) =>
            Inner.SetMonthlyCapAsync(account, capMicro, cancellationToken);

        public ValueTask<McpGuardLedgerPage> GetLedgerAsync(string account, long? before, int limit, CancellationToken cancellationToken) =>
            Inner.GetLedgerAsync(account, before, limit, cancellationToken);
    }
}
