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
internal sealed record AdminCreatedKeyBody(string Id, string Key, string Account, IReadOnlyList<string> Scopes, DateTime? ExpiresAt);

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
[JsonSerializable(typeof(long?))]
[JsonSerializable(typeof(string))]
internal sealed partial class AdminJsonContext : JsonSerializerContext;
