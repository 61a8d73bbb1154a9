using System.Net;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.Credits;

/// <summary>A gate that throws is McpGuard's own failure: the caller gets the catalog's 500, never a bare one.</summary>
public sealed class GateFailureTests
{
    [Fact]
    public async Task A_ledger_that_throws_answers_500_internal_error_with_the_request_id_and_logs_once()
    {
        await using var host = await GuardedHost.StartSampleAsync(configure: builder =>
            builder.ConfigureServices(services => services.AddSingleton<IMcpGuardLedgerStore, ThrowingLedgerStore>()));

        using var response = await host.PostMcpAsync("""{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}""");

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        var requestId = Assert.Single(response.Headers.GetValues("X-Request-Id"));
        Assert.Equal(
            "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32603,\"message\":\"Internal error\",\"data\":{\"reason\":\"internal_error\",\"request_id\":\"" + requestId + "\"}}}",
            await response.Content.ReadAsStringAsync());
        var logged = Assert.Single(host.Logs.Entries, e => e.EventId.Id == 2004);
        Assert.Contains(requestId, logged.Message, StringComparison.Ordinal);
        Assert.IsType<IOException>(logged.Exception);
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

    private sealed class ThrowingLedgerStore : IMcpGuardLedgerStore
    {
        public ValueTask<bool> SeedAsync(IReadOnlyList<McpGuardAccountSeed> seeds, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult(false);

        public ValueTask<McpGuardChargeResult> ChargeAsync(McpGuardChargeRequest request, CancellationToken cancellationToken) => throw new IOException("disk full");

        public ValueTask<bool> RefundAsync(string requestId, DateTimeOffset now, CancellationToken cancellationToken) => throw new IOException("disk full");

        public ValueTask<McpGuardLedgerEntry> TopUpAsync(string account, long amountMicro, string? note, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardLedgerEntry> AdjustAsync(string account, long amountMicro, string note, DateTimeOffset now, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardAccount?> GetAccountAsync(string account, int freeCallsPerMonth, DateTimeOffset now, CancellationToken cancellationToken) => ValueTask.FromResult<McpGuardAccount?>(null);

        public ValueTask SetMonthlyCapAsync(string account, long? capMicro, CancellationToken cancellationToken) => throw new NotSupportedException();

        public ValueTask<McpGuardLedgerPage> GetLedgerAsync(string account, long? before, int limit, CancellationToken cancellationToken) => throw new NotSupportedException();
    }
}
