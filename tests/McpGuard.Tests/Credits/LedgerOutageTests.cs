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
    public async Task A_capture_the_ledger_fails_is_not_tried_again_at_the_maximum_and_the_call_shows_no_charge()
    {
        // The sample's metered search, through WithMcpGuard(): the tool reports 7 units, the ledger refuses the capture.
        var ledger = new FlakyLedger { CaptureFailures = 1 };
        await using var host = await GuardedHost.StartSampleAsync(configure: builder => builder.ConfigureServices(services => services.AddSingleton<IMcpGuardLedgerStore>(ledger)));

        using var response = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(1, "search", """{"query":"berry","limit":7}"""), "capture-fails");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Null(CreditCalls.Header(response, CreditCalls.ChargeHeader));
        var result = (await Sse.ReadSingleMessageAsync(response)).GetProperty("result");
        Assert.False(result.TryGetProperty("_meta", out _));
        Assert.Equal("CaptureFailed", Assert.Single(host.Logs.Entries, e => e.EventId.Id == 6108).EventId.Name);
        // Only the hold: no capture of the maximum after the failed one. The hold goes when it expires; the call is not billed.
        var rows = (await ledger.Inner.GetLedgerAsync("alice", null, 10, default)).Entries.Where(r => r.RequestId == "capture-fails");
        Assert.Equal([(McpGuardLedgerEntryKind.Reservation, -20L)], rows.Select(r => (r.Kind, r.AmountMicro)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_charge_that_lands_after_the_store_timeout_is_refunded_and_the_caller_got_503(bool attemptAware)
    {
        // With a ledger that refunds one attempt, whatever the id; with one that cannot, for an id McpGuard made (none sent).
        var ledger = attemptAware ? new AttemptLedger { ChargeDelay = TimeSpan.FromMilliseconds(900) } : new FlakyLedger { ChargeDelay = TimeSpan.FromMilliseconds(900) };
        var served = 0;
        await using var host = await StartAsync(ledger, async context =>
        {
            Interlocked.Increment(ref served);
            await context.Response.WriteAsync("never reached");
        });

        using var response = await host.Client.SendAsync(CreditCalls.Post(CreditCalls.ToolCall(1, "work", "{}"), DemoKeys.Alice, attemptAware ? "outage-late" : null));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("1", Assert.Single(response.Headers.GetValues("Retry-After")));
        Assert.Equal(0, served);
        var requestId = Assert.Single(response.Headers.GetValues("X-Request-Id"));

        // The charge landed about 0.7 s after the caller was refused; the refund watches for it and gives it back.
        var settled = await host.Logs.WaitForAsync(6104, Bound);
        Assert.StartsWith($"Refund of request {requestId} (ledger unavailable while charging) settled after ", settled.Message, StringComparison.Ordinal);
        Assert.EndsWith(" attempts; refunded: True.", settled.Message, StringComparison.Ordinal);
        Assert.Equal(1, ledger.ChargesLanded);
        var rows = (await ledger.Inner.GetLedgerAsync("alice", null, 10, default)).Entries;
        Assert.Equal(
            [(McpGuardLedgerEntryKind.Refund, Price), (McpGuardLedgerEntryKind.Usage, -Price), (McpGuardLedgerEntryKind.TopUp, Balance)],
            rows.Select(r => (r.Kind, r.AmountMicro)));
        Assert.Equal(Balance, rows[0].BalanceAfterMicro);
    }

    [Fact]
    public async Task A_retry_with_the_same_request_id_that_was_charged_and_served_keeps_its_charge()
    {
        // The first attempt's charge is slow and lands after the retry's: the ledger refuses it as a duplicate. The
        // watch for the first attempt must not give back the retry's charge, though both carry the client's id.
        // (2 s: the retry's own charge must land first even on a loaded machine; a full run once took longer than 0.7 s.)
        var ledger = new AttemptLedger { ChargeDelay = TimeSpan.FromSeconds(2), DelayFirstChargeOnly = true };
        var served = 0;
        await using var host = await StartAsync(ledger, async context =>
        {
            Interlocked.Increment(ref served);
            await CreditCalls.AnswerWithResult(context);
        });

        using var refused = await host.Client.SendAsync(CreditCalls.Post(CreditCalls.ToolCall(1, "work", "{}"), DemoKeys.Alice, "order-42"));
        using var retried = await host.Client.SendAsync(CreditCalls.Post(CreditCalls.ToolCall(1, "work", "{}"), DemoKeys.Alice, "order-42"));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal(HttpStatusCode.OK, retried.StatusCode);
        Assert.Equal(1, served);

        // Long enough for the first charge to land (refused as a duplicate) and for the watch to look three times.
        await Task.Delay(TimeSpan.FromSeconds(4.5));
        Assert.Equal(0, ledger.ChargesLanded);
        var rows = (await ledger.Inner.GetLedgerAsync("alice", null, 10, default)).Entries;
        Assert.Equal([(McpGuardLedgerEntryKind.Usage, -Price), (McpGuardLedgerEntryKind.TopUp, Balance)], rows.Select(r => (r.Kind, r.AmountMicro)));
        Assert.DoesNotContain(host.Logs.Entries, e => e.EventId.Id == 6104);
    }

    [Fact]
    public async Task A_store_that_cannot_refund_one_attempt_logs_a_client_chosen_id_for_the_operator_instead_of_refunding_by_id()
    {
        var ledger = new FlakyLedger { ChargeDelay = TimeSpan.FromMilliseconds(300) };
        await using var host = await StartAsync(ledger, context => context.Response.WriteAsync("never reached"));

        using var response = await host.Client.SendAsync(CreditCalls.Post(CreditCalls.ToolCall(1, "work", "{}"), DemoKeys.Alice, "order-43"));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var logged = Assert.Single(host.Logs.Entries, e => e.EventId.Id == 6107);
        Assert.Equal(
            "The charge of account alice for request order-43 may have landed though the call was refused; the ledger cannot refund one attempt and the client chose the id, so it is not refunded automatically: check the ledger for this request id.",
            logged.Message);
        Assert.Equal(0, host.Services.GetRequiredService<RefundRetry>().PendingCount);
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
    private class FlakyLedger : IMcpGuardLedgerStore
    {
        private int _refundFailures;
        private int _captureFailures;
        private int _landed;
        private int _charges;

        public LedgerEngine Inner { get; } = new(new InMemoryJournal(), TimeProvider.System, NullLogger.Instance);

        public int RefundFailures { get => _refundFailures; init => _refundFailures = value; }

        public TimeSpan ChargeDelay { get; init; }

        /// <summary>Only the first charge is slow (the retries that follow it are not).</summary>
        public bool DelayFirstChargeOnly { get; init; }

        public int ChargesLanded => Volatile.Read(ref _landed);

        public ValueTask<bool> SeedAsync(IReadOnlyList<McpGuardAccount> seeds, DateTimeOffset now, CancellationToken cancellationToken) =>
            Inner.SeedAsync(seeds, now, cancellationToken);

        public async ValueTask<McpGuardChargeResult> ChargeAsync(McpGuardChargeRequest request, CancellationToken cancellationToken)
        {
            var first = Interlocked.Increment(ref _charges) == 1;
            if (ChargeDelay > TimeSpan.Zero && (first || !DelayFirstChargeOnly))
            {
                // The caller stops waiting at its timeout; the charge lands anyway, later.
                _ = Task.Run(async () =>
                {
                    await Task.Delay(ChargeDelay, CancellationToken.None);
                    if ((await Inner.ChargeAsync(request, CancellationToken.None)).Outcome == McpGuardChargeOutcome.Charged)
                    {
                        Interlocked.Increment(ref _landed);
                    }
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

        public int CaptureFailures { get => _captureFailures; init => _captureFailures = value; }

        public ValueTask<McpGuardLedgerEntry?> CaptureAsync(string requestId, long amountMicro, DateTimeOffset now, CancellationToken cancellationToken) =>
            Interlocked.Decrement(ref _captureFailures) >= 0
                ? throw new IOException("connection refused")
                : Inner.CaptureAsync(requestId, amountMicro, now, cancellationToken);

        public ValueTask<int> ReleaseReservationsAsync(DateTimeOffset placedBefore, DateTimeOffset now, CancellationToken cancellationToken) =>
            Inner.ReleaseReservationsAsync(placedBefore, now, cancellationToken);
    }

    /// <summary>The same ledger, able to refund one attempt's charge (as PostgreSQL's is).</summary>
    private sealed class AttemptLedger : FlakyLedger, IAttemptRefunds
    {
        /// <summary>Refunds the usage row of that request, account and time only, as an attempt-aware store does.</summary>
        public async ValueTask<bool> RefundAttemptAsync(string requestId, string account, DateTimeOffset chargedAt, DateTimeOffset now, CancellationToken cancellationToken)
        {
            var rows = (await Inner.GetLedgerAsync(account, null, 1000, cancellationToken)).Entries;
            return rows.Any(r => r.Kind == McpGuardLedgerEntryKind.Usage && r.RequestId == requestId && r.Timestamp == chargedAt)
                && await RefundAsync(requestId, now, cancellationToken);
        }
    }
}
