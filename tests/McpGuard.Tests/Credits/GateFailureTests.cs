using System.Diagnostics;
using System.Net;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.Credits;

/// <summary>A gate that throws is McpGuard's own failure: the caller gets the catalog's 500, never a bare one.</summary>
public sealed class GateFailureTests
{
    [Fact]
    public async Task A_ledger_that_throws_answers_503_ledger_unavailable_and_keeps_the_refund_to_retry()
    {
        await using var host = await GuardedHost.StartSampleAsync(configure: builder =>
            builder.ConfigureServices(services => services.AddSingleton<IMcpGuardLedgerStore, ThrowingLedgerStore>()));

        using var response = await host.PostMcpAsync("""{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}""");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("1", Assert.Single(response.Headers.GetValues("Retry-After")));
        var requestId = Assert.Single(response.Headers.GetValues("X-Request-Id"));
        Assert.Equal(
            "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-31305,\"message\":\"Ledger unavailable: nothing was charged; retry after 1 s.\",\"data\":{\"reason\":\"ledger_unavailable\",\"request_id\":\"" + requestId + "\",\"retry_after\":1}}}",
            await response.Content.ReadAsStringAsync());
        var logged = Assert.Single(host.Logs.Entries, e => e.EventId.Id == 6106);
        Assert.Equal($"The ledger did not answer the charge of account alice for request {requestId}; the call is refused with ledger_unavailable.", logged.Message);
        Assert.IsType<IOException>(logged.Exception);
        Assert.DoesNotContain(host.Logs.Entries, e => e.EventId.Id == 2004);

        // The charge may have landed before the ledger failed, so its refund is asked for, and kept while the ledger fails.
        var refundFailed = Assert.Single(host.Logs.Entries, e => e.EventId.Id == 6103);
        Assert.Equal($"The ledger did not answer the refund of request {requestId} (ledger unavailable while charging); it will be retried.", refundFailed.Message);
        Assert.Equal(1, host.Services.GetRequiredService<McpGuard.Credits.RefundRetry>().PendingCount);
    }

    [Fact]
    public async Task A_ledger_slower_than_the_store_timeout_answers_503_ledger_unavailable_when_the_timeout_ends()
    {
        await using var host = await GuardedHost.StartSampleAsync(
            new Dictionary<string, string?> { ["McpGuard:StoreTimeout"] = "00:00:00.2" },
            configure: builder => builder.ConfigureServices(services => services.AddSingleton<IMcpGuardLedgerStore, HangingLedgerStore>()));

        using var response = await host.PostMcpAsync("""{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}""");

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        var logged = Assert.Single(host.Logs.Entries, e => e.EventId.Id == 6106);
        Assert.IsAssignableFrom<OperationCanceledException>(logged.Exception);
    }

    [Fact]
    public async Task A_suspension_in_configuration_is_decided_by_configuration_alone()
    {
        // The ledger is seeded from the same configuration; lifting carol's suspension there must be enough.
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Accounts:carol:Suspended"] = "false" });

        using var response = await host.PostMcpAsync(
            """{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"message":"back"}}}""", apiKey: DemoKeys.Carol);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var message = await Sse.ReadSingleMessageAsync(response);
        Assert.Equal("back", message.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
    }

    /// <summary>Never answers a charge or a refund until cancelled.</summary>
    private sealed class HangingLedgerStore : IMcpGuardLedgerStore
    {
        public ValueTask<bool> SeedAsync(IReadOnlyList<McpGuardAccount> seeds, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(false);

        public async ValueTask<McpGuardChargeResult> ChargeAsync(McpGuardChargeRequest request, CancellationToken cancellationToken)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            throw new UnreachableException();
        }

        public async ValueTask<bool> RefundAsync(string requestId, DateTimeOffset now, CancellationToken cancellationToken)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            throw new UnreachableException();
        }

        public ValueTask<McpGuardLedgerEntry> TopUpAsync(string account, long amountMicro, string? note, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardLedgerEntry> AdjustAsync(string account, long amountMicro, string note, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardAccount?> GetAccountAsync(string account, int freeCallsPerMonth, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult<McpGuardAccount?>(null);

        public ValueTask SetMonthlyCapAsync(string account, long? capMicro, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardLedgerPage> GetLedgerAsync(string account, long? before, int limit, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardLedgerEntry?> CaptureAsync(string requestId, long amountMicro, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<int> ReleaseReservationsAsync(DateTimeOffset placedBefore, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(0);
    }

    internal sealed class ThrowingLedgerStore : IMcpGuardLedgerStore
    {
        public ValueTask<bool> SeedAsync(IReadOnlyList<McpGuardAccount> seeds, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(false);

        public ValueTask<McpGuardChargeResult> ChargeAsync(McpGuardChargeRequest request, CancellationToken cancellationToken) => throw new IOException("disk full");

        public ValueTask<bool> RefundAsync(string requestId, DateTimeOffset now, CancellationToken cancellationToken) => throw new IOException("disk full");

        public ValueTask<McpGuardLedgerEntry> TopUpAsync(string account, long amountMicro, string? note, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardLedgerEntry> AdjustAsync(string account, long amountMicro, string note, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardAccount?> GetAccountAsync(string account, int freeCallsPerMonth, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult<McpGuardAccount?>(null);

        public ValueTask SetMonthlyCapAsync(string account, long? capMicro, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardLedgerPage> GetLedgerAsync(string account, long? before, int limit, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardLedgerEntry?> CaptureAsync(string requestId, long amountMicro, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<int> ReleaseReservationsAsync(DateTimeOffset placedBefore, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(0);
    }
}
