using McpGuard.Credits;
using System.Text.Json.Serialization;

namespace McpGuard.Admin;

/// <summary>An account as <c>GET /accounts/{id}</c> shows it.</summary>
internal sealed record AdminAccountBody(string Id, long BalanceMicro, long? MonthlyCapMicro, long SpentThisMonthMicro, int FreeCallsLeft, string Status);

/// <summary>One ledger row. <see cref="Timestamp"/> is UTC, so it is written with a <c>Z</c>.</summary>
internal sealed record AdminLedgerRowBody(
    long Id, string Account, string Kind, long AmountMicro, long BalanceAfterMicro, string? Tool, string? RequestId, bool Free, string? Note, DateTime Timestamp)
{
    public static AdminLedgerRowBody From(McpGuardLedgerEntry entry) => new(
        entry.Id,
        entry.Account,
        entry.Kind switch
        {
            McpGuardLedgerEntryKind.TopUp => "top_up",
            McpGuardLedgerEntryKind.Usage => "usage",
            McpGuardLedgerEntryKind.Refund => "refund",
            McpGuardLedgerEntryKind.Adjustment => "adjustment",
            McpGuardLedgerEntryKind.Reservation => "reservation",
            McpGuardLedgerEntryKind.Capture => "capture",
            McpGuardLedgerEntryKind.Release => "release",
            _ => throw new ArgumentOutOfRangeException(nameof(entry), entry.Kind, "Unknown ledger entry kind."),
        },
        entry.AmountMicro,
        entry.BalanceAfterMicro,
        entry.Tool,
        entry.RequestId,
        entry.Free,
        entry.Note,
        entry.Timestamp.UtcDateTime);
}

/// <summary>What a top-up or an adjustment answers: the new row and the account after it.</summary>
internal sealed record AdminMoveBody(AdminLedgerRowBody Entry, AdminAccountBody Account);

/// <summary>A page of ledger rows, newest first.</summary>
internal sealed record AdminLedgerPageBody(IReadOnlyList<AdminLedgerRowBody> Entries, long? NextCursor);

/// <summary>A key just created: the only time its plaintext is shown.</summary>
internal sealed record AdminCreatedKeyBody(string Id, string Key, string Account, IReadOnlyList<string> Scopes, DateTime? ExpiresAt)
{
    /// <summary>The key's spend ceiling per call; absent when it has none.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public long? MaxPriceMicro { get; init; }
}

/// <summary>A revoked key.</summary>
internal sealed record AdminRevokedKeyBody(string Id, bool Revoked);

/// <summary>A tool's status after a change.</summary>
internal sealed record AdminToolBody(string Tool, string Status);

/// <summary>An account's status alone: what suspend and reactivate answer when credits are off (there is no balance to show).</summary>
internal sealed record AdminAccountStatusBody(string Id, string Status);

/// <summary>
/// What <c>GET /ledger/verify</c> answers: how many accounts and rows were checked, as of which row, and every account whose
/// balance is not what its rows add up to (an empty list: the money invariant holds).
/// </summary>
internal sealed record AdminLedgerCheckBody(int AccountsChecked, long RowsChecked, long AsOfEntryId, IReadOnlyList<AdminLedgerDifferenceBody> Differences);

/// <summary>
/// An account whose balance differs from its rows: the balance, what the rows add up to (<c>ledger_micro</c>: top-ups, usage,
/// refunds and adjustments, each signed as in the ledger), and its last row's balance-after.
/// </summary>
internal sealed record AdminLedgerDifferenceBody(
    string Account, long BalanceMicro, long LedgerMicro, long DifferenceMicro, long TopUpsMicro, long UsageMicro, long RefundsMicro, long AdjustmentsMicro, long? LastBalanceAfterMicro)
{
    public static AdminLedgerDifferenceBody From(LedgerDifference difference) => new(
        difference.Account,
        difference.Balance,
        difference.Rows.Total,
        difference.Balance - difference.Rows.Total,
        difference.Rows.TopUps,
        difference.Rows.Usage,
        difference.Rows.Refunds,
        difference.Rows.Adjustments,
        difference.Rows.LastBalanceAfter);
}

/// <summary>
/// Money figures of the ledger's usage and refund rows over some stretch (a bucket, a tool, an account, the window): calls
/// charged and what they cost, calls the free tier paid, refunds and what they gave back, and what stays (charged less
/// refunded). Amounts are positive micro-units.
/// </summary>
internal record AdminUsageFigures
{
    [JsonPropertyOrder(1)]
    public long ChargedCalls { get; set; }

    [JsonPropertyOrder(2)]
    public long ChargedMicro { get; set; }

    [JsonPropertyOrder(3)]
    public long FreeCalls { get; set; }

    [JsonPropertyOrder(4)]
    public long Refunds { get; set; }

    [JsonPropertyOrder(5)]
    public long RefundedMicro { get; set; }

    [JsonPropertyOrder(6)]
    public long FreeRefunds { get; set; }

    [JsonPropertyOrder(7)]
    public long NetMicro => ChargedMicro - RefundedMicro;

    /// <summary>Counts one group of rows in.</summary>
    public void Add(McpGuardLedgerTotal total)
    {
        switch (total.Kind, total.Free)
        {
            case (McpGuardLedgerEntryKind.Usage or McpGuardLedgerEntryKind.Capture, false):
                // A metered call's capture is its charge; its reservation and release are a hold and its end, not money spent.
                ChargedCalls += total.Rows;
                ChargedMicro -= total.AmountMicro;
                break;
            case (McpGuardLedgerEntryKind.Usage, true):
                FreeCalls += total.Rows;
                break;
            case (McpGuardLedgerEntryKind.Refund, false):
                Refunds += total.Rows;
                RefundedMicro += total.AmountMicro;
                break;
            case (McpGuardLedgerEntryKind.Refund, true):
                FreeRefunds += total.Rows;
                break;
        }
    }
}

/// <summary>One bucket of the usage window, starting at <see cref="Start"/>.</summary>
internal sealed record AdminUsageBucketBody([property: JsonPropertyOrder(0)] DateTime Start) : AdminUsageFigures;

/// <summary>One tool's figures over the usage window.</summary>
internal sealed record AdminUsageToolBody([property: JsonPropertyOrder(0)] string Tool) : AdminUsageFigures;

/// <summary>One account's figures over the usage window.</summary>
internal sealed record AdminUsageAccountBody([property: JsonPropertyOrder(0)] string Account) : AdminUsageFigures;

/// <summary>
/// What <c>GET /usage</c> answers, from the ledger: the window, its totals, its buckets oldest first, its tools and its
/// accounts (each list by charged amount, largest first, at most <see cref="AdminApi.MaxUsageRows"/>; <c>*_total</c> says
/// how many there were).
/// </summary>
internal sealed record AdminUsageBody(
    string Window,
    int BucketSeconds,
    DateTime From,
    DateTime To,
    AdminUsageFigures Totals,
    IReadOnlyList<AdminUsageBucketBody> Buckets,
    IReadOnlyList<AdminUsageToolBody> Tools,
    int ToolsTotal,
    IReadOnlyList<AdminUsageAccountBody> Accounts,
    int AccountsTotal);

/// <summary>Requests passed and refused, in one bucket of the traffic window or in all of it.</summary>
internal sealed record AdminTrafficBucketBody(DateTime Start, long Passed, long Refused);

/// <summary>Requests refused for one reason.</summary>
internal sealed record AdminTrafficReasonBody(string Reason, long Count);

/// <summary>One tool's requests, passed and refused.</summary>
internal sealed record AdminTrafficToolBody(string Tool, long Passed, long Refused);

/// <summary>One MCP method's requests, passed and refused.</summary>
internal sealed record AdminTrafficMethodBody(string Method, long Passed, long Refused);

/// <summary>
/// What <c>GET /traffic</c> answers: this instance's guarded requests (since it started, at most the last day), per
/// bucket, per refusal reason, per tool and per method.
/// </summary>
internal sealed record AdminTrafficBody(
    string Window,
    int BucketSeconds,
    string Scope,
    long Passed,
    long Refused,
    IReadOnlyList<AdminTrafficBucketBody> Buckets,
    IReadOnlyList<AdminTrafficReasonBody> Refusals,
    IReadOnlyList<AdminTrafficToolBody> Tools,
    IReadOnlyList<AdminTrafficMethodBody> Methods);

/// <summary>A tool of <c>McpGuard:Tools</c>: its price, scopes, the status configured and the status in force.</summary>
internal sealed record AdminToolInfoBody(string Tool, long PriceMicro, IReadOnlyList<string> Scopes, string ConfiguredStatus, string Status)
{
    /// <summary>A metered tool's rate per unit (its <see cref="PriceMicro"/> is then its maximum); absent for a flat price.</summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public long? PerUnitMicro { get; init; }
}

/// <summary>What <c>GET /tools</c> answers: the configured tools by name, and the price of any other tool.</summary>
internal sealed record AdminToolsBody(IReadOnlyList<AdminToolInfoBody> Tools, long DefaultPriceMicro);

/// <summary>The admin API's JSON: snake_case names, nulls written (every field is always present).</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(AdminAccountBody))]
[JsonSerializable(typeof(AdminMoveBody))]
[JsonSerializable(typeof(AdminLedgerPageBody))]
[JsonSerializable(typeof(AdminCreatedKeyBody))]
[JsonSerializable(typeof(AdminRevokedKeyBody))]
[JsonSerializable(typeof(AdminToolBody))]
[JsonSerializable(typeof(AdminAccountStatusBody))]
[JsonSerializable(typeof(AdminLedgerCheckBody))]
[JsonSerializable(typeof(AdminUsageBody))]
[JsonSerializable(typeof(AdminTrafficBody))]
[JsonSerializable(typeof(AdminToolsBody))]
[JsonSerializable(typeof(long?))]
[JsonSerializable(typeof(string))]
internal sealed partial class AdminJsonContext : JsonSerializerContext;
