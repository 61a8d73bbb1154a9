namespace McpGuard;

/// <summary>The kind of a ledger row.</summary>
public enum McpGuardLedgerEntryKind
{
    /// <summary>Credit added (including seed balances).</summary>
    TopUp,

    /// <summary>A call's charge (negative amount), or a free call (amount 0).</summary>
    Usage,

    /// <summary>A charge given back because the server failed to serve the call (same amount, positive).</summary>
    Refund,

    /// <summary>A manual correction by an operator.</summary>
    Adjustment,
}

/// <summary>One append-only ledger row. Amounts are signed micro-units; an account's balance is the sum of its rows.</summary>
/// <param name="Id">Increasing row id (also the pagination cursor).</param>
/// <param name="Account">The account.</param>
/// <param name="Kind">What moved.</param>
/// <param name="AmountMicro">Signed amount: usage negative, top-ups and refunds positive.</param>
/// <param name="BalanceAfterMicro">The account's balance after this row.</param>
/// <param name="Tool">The tool (or method) a usage or refund row is for.</param>
/// <param name="RequestId">The request a usage or refund row is for.</param>
/// <param name="Timestamp">When it was written (UTC).</param>
/// <param name="Free">A usage row paid by the free tier.</param>
/// <param name="Note">Why (top-ups and adjustments).</param>
public sealed record McpGuardLedgerEntry(
    long Id,
    string Account,
    McpGuardLedgerEntryKind Kind,
    long AmountMicro,
    long BalanceAfterMicro,
    string? Tool,
    string? RequestId,
    DateTimeOffset Timestamp,
    bool Free,
    string? Note);

/// <summary>An account as the admin API shows it.</summary>
/// <param name="Id">The account id.</param>
/// <param name="BalanceMicro">Prepaid balance.</param>
/// <param name="MonthlyCapMicro">Monthly spending cap, if any.</param>
/// <param name="SpentThisMonthMicro">Net spend this calendar month (UTC): charges less refunds.</param>
/// <param name="FreeCallsLeft">Free priced calls left this month.</param>
public sealed record McpGuardAccount(string Id, long BalanceMicro, long? MonthlyCapMicro, long SpentThisMonthMicro, int FreeCallsLeft);

/// <summary>A page of an account's ledger, newest first.</summary>
/// <param name="Entries">The rows.</param>
/// <param name="NextCursor">Pass as <c>before</c> for the next (older) page; null at the end.</param>
public sealed record McpGuardLedgerPage(IReadOnlyList<McpGuardLedgerEntry> Entries, long? NextCursor);

/// <summary>A priced call to charge.</summary>
/// <param name="Account">Who pays.</param>
/// <param name="RequestId">The request (charged at most once).</param>
/// <param name="Tool">The tool or method.</param>
/// <param name="PriceMicro">The price.</param>
/// <param name="FreeCallsPerMonth">The account's free-tier allowance.</param>
/// <param name="Now">The time of the call.</param>
public sealed record McpGuardChargeRequest(string Account, string RequestId, string Tool, long PriceMicro, int FreeCallsPerMonth, DateTimeOffset Now);

/// <summary>What a charge did.</summary>
public enum McpGuardChargeOutcome
{
    /// <summary>The price was debited.</summary>
    Charged,

    /// <summary>The free tier paid.</summary>
    Free,

    /// <summary>Refused: the balance does not cover the price.</summary>
    OutOfCredit,

    /// <summary>Refused: the month's net spend plus the price would exceed the cap.</summary>
    CapReached,

    /// <summary>Refused: this request id was already charged.</summary>
    DuplicateRequest,
}

/// <summary>The result of a charge.</summary>
/// <param name="Outcome">What happened.</param>
/// <param name="BalanceMicro">The balance after the charge (or as it stands, when refused).</param>
/// <param name="SpentThisMonthMicro">The month's net spend after the charge.</param>
/// <param name="MonthlyCapMicro">The cap, if any.</param>
public sealed record McpGuardChargeResult(McpGuardChargeOutcome Outcome, long BalanceMicro, long SpentThisMonthMicro, long? MonthlyCapMicro);

/// <summary>An account's starting point, applied once to an empty store.</summary>
/// <param name="Account">The account id.</param>
/// <param name="InitialBalanceMicro">Its first top-up.</param>
/// <param name="MonthlyCapMicro">Its monthly cap, if any.</param>
public sealed record McpGuardAccountSeed(string Account, long InitialBalanceMicro, long? MonthlyCapMicro);

/// <summary>
/// The money: balances, charges, refunds, top-ups, adjustments, monthly caps and the append-only ledger of rows that
/// records them. McpGuard keeps it in its SQLite file or in memory (<c>McpGuard:Store</c>); register your own
/// implementation as a singleton to keep it elsewhere. Implementations must never let a balance go below zero, charge a
/// request id at most once, refund it at most once, and keep every balance equal to the sum of the account's rows.
/// </summary>
public interface IMcpGuardLedgerStore
{
    /// <summary>Applies <paramref name="seeds"/> if the store has no accounts yet; returns whether it did.</summary>
    ValueTask<bool> SeedAsync(IReadOnlyList<McpGuardAccountSeed> seeds, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Charges a call atomically: free tier first, then balance, then cap. Durable before it returns.</summary>
    ValueTask<McpGuardChargeResult> ChargeAsync(McpGuardChargeRequest request, CancellationToken cancellationToken);

    /// <summary>Gives a charge back with a refund row of the same amount. Idempotent; false when there is nothing to refund.</summary>
    ValueTask<bool> RefundAsync(string requestId, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Adds credit.</summary>
    ValueTask<McpGuardLedgerEntry> TopUpAsync(string account, long amountMicro, string? note, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Corrects a balance by a signed amount; never below zero.</summary>
    ValueTask<McpGuardLedgerEntry> AdjustAsync(string account, long amountMicro, string note, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>The account, or null if the store has never seen it.</summary>
    ValueTask<McpGuardAccount?> GetAccountAsync(string account, int freeCallsPerMonth, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Sets or clears the monthly cap.</summary>
    ValueTask SetMonthlyCapAsync(string account, long? capMicro, CancellationToken cancellationToken);

    /// <summary>A page of the account's rows, newest first, older than <paramref name="before"/> when given.</summary>
    ValueTask<McpGuardLedgerPage> GetLedgerAsync(string account, long? before, int limit, CancellationToken cancellationToken);
}
