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

    /// <summary>A metered call's hold on its maximum price (negative amount), taken before the call runs.</summary>
    Reservation,

    /// <summary>What a metered call used (negative amount, at most its reservation), written after the release of its hold.</summary>
    Capture,

    /// <summary>A metered call's hold given back in full (positive amount): before its capture, or alone when the call was not served.</summary>
    Release,
}

/// <summary>One append-only ledger row. Amounts are signed micro-units; an account's balance is the sum of its rows.</summary>
/// <param name="id">Increasing row id (also the pagination cursor).</param>
/// <param name="account">The account.</param>
/// <param name="kind">What moved.</param>
/// <param name="amountMicro">Signed amount: usage negative, top-ups and refunds positive.</param>
/// <param name="balanceAfterMicro">The account's balance after this row.</param>
/// <param name="tool">The tool (or method) a usage or refund row is for.</param>
/// <param name="requestId">The request a usage or refund row is for.</param>
/// <param name="timestamp">When it was written (UTC).</param>
/// <param name="free">A usage row paid by the free tier.</param>
/// <param name="note">Why (top-ups and adjustments).</param>
public sealed class McpGuardLedgerEntry(
    long id,
    string account,
    McpGuardLedgerEntryKind kind,
    long amountMicro,
    long balanceAfterMicro,
    string? tool,
    string? requestId,
    DateTimeOffset timestamp,
    bool free,
    string? note)
{
    /// <summary>Increasing row id (also the pagination cursor).</summary>
    public long Id { get; } = id;

    /// <summary>The account.</summary>
    public string Account { get; } = account;

    /// <summary>What moved.</summary>
    public McpGuardLedgerEntryKind Kind { get; } = kind;

    /// <summary>Signed amount: usage negative, top-ups and refunds positive.</summary>
    public long AmountMicro { get; } = amountMicro;

    /// <summary>The account's balance after this row.</summary>
    public long BalanceAfterMicro { get; } = balanceAfterMicro;

    /// <summary>The tool (or method) a usage or refund row is for.</summary>
    public string? Tool { get; } = tool;

    /// <summary>The request a usage or refund row is for.</summary>
    public string? RequestId { get; } = requestId;

    /// <summary>When it was written (UTC).</summary>
    public DateTimeOffset Timestamp { get; } = timestamp;

    /// <summary>A usage row paid by the free tier.</summary>
    public bool Free { get; } = free;

    /// <summary>Why (top-ups and adjustments).</summary>
    public string? Note { get; } = note;
}

/// <summary>An account as the admin API shows it.</summary>
/// <param name="id">The account id.</param>
/// <param name="balanceMicro">Prepaid balance.</param>
/// <param name="monthlyCapMicro">Monthly spending cap, if any.</param>
/// <param name="spentThisMonthMicro">Net spend this calendar month (UTC): charges less refunds.</param>
/// <param name="freeCallsLeft">Free priced calls left this month.</param>
public sealed class McpGuardAccount(string id, long balanceMicro, long? monthlyCapMicro, long spentThisMonthMicro, int freeCallsLeft)
{
    /// <summary>The account id.</summary>
    public string Id { get; } = id;

    /// <summary>Prepaid balance.</summary>
    public long BalanceMicro { get; } = balanceMicro;

    /// <summary>Monthly spending cap, if any.</summary>
    public long? MonthlyCapMicro { get; } = monthlyCapMicro;

    /// <summary>Net spend this calendar month (UTC): charges less refunds.</summary>
    public long SpentThisMonthMicro { get; } = spentThisMonthMicro;

    /// <summary>Free priced calls left this month.</summary>
    public int FreeCallsLeft { get; } = freeCallsLeft;
}

/// <summary>A page of an account's ledger, newest first.</summary>
/// <param name="entries">The rows.</param>
/// <param name="nextCursor">Pass as <c>before</c> for the next (older) page; null at the end.</param>
public sealed class McpGuardLedgerPage(IReadOnlyList<McpGuardLedgerEntry> entries, long? nextCursor)
{
    /// <summary>The rows.</summary>
    public IReadOnlyList<McpGuardLedgerEntry> Entries { get; } = entries;

    /// <summary>Pass as <c>before</c> for the next (older) page; null at the end.</summary>
    public long? NextCursor { get; } = nextCursor;
}

/// <summary>
/// The ledger rows of one bucket of time, account, tool, kind and free flag, added up: what
/// <see cref="ILedgerTotals.GetTotalsAsync"/> answers for the admin API's usage figures and the dashboard's charts.
/// </summary>
/// <param name="bucketStart">The start of the bucket the rows fall in (UTC).</param>
/// <param name="account">The account.</param>
/// <param name="tool">The tool (or method) of usage and refund rows; null for top-ups and adjustments.</param>
/// <param name="kind">What moved.</param>
/// <param name="free">Rows paid by the free tier (usage rows of amount 0, and their refunds).</param>
/// <param name="rows">How many rows.</param>
/// <param name="amountMicro">Their signed amounts added up: usage negative, top-ups and refunds positive.</param>
internal sealed class McpGuardLedgerTotal(DateTimeOffset bucketStart, string account, string? tool, McpGuardLedgerEntryKind kind, bool free, long rows, long amountMicro)
{
    /// <summary>The start of the bucket the rows fall in (UTC).</summary>
    public DateTimeOffset BucketStart { get; } = bucketStart;

    /// <summary>The account.</summary>
    public string Account { get; } = account;

    /// <summary>The tool (or method) of usage and refund rows; null for top-ups and adjustments.</summary>
    public string? Tool { get; } = tool;

    /// <summary>What moved.</summary>
    public McpGuardLedgerEntryKind Kind { get; } = kind;

    /// <summary>Rows paid by the free tier (usage rows of amount 0, and their refunds).</summary>
    public bool Free { get; } = free;

    /// <summary>How many rows.</summary>
    public long Rows { get; } = rows;

    /// <summary>Their signed amounts added up: usage negative, top-ups and refunds positive.</summary>
    public long AmountMicro { get; } = amountMicro;
}

/// <summary>A priced call to charge.</summary>
public sealed class McpGuardChargeRequest
{
    internal McpGuardChargeRequest(string account, string requestId, string tool, long priceMicro, int freeCallsPerMonth, DateTimeOffset now, bool newRequestId = false, bool reserve = false)
    {
        Reserve = reserve;
        NewRequestId = newRequestId;
        Account = account;
        RequestId = requestId;
        Tool = tool;
        PriceMicro = priceMicro;
        FreeCallsPerMonth = freeCallsPerMonth;
        Now = now;
    }

    /// <summary>Who pays.</summary>
    public string Account { get; }

    /// <summary>The request (charged at most once).</summary>
    public string RequestId { get; }

    /// <summary>The tool or method.</summary>
    public string Tool { get; }

    /// <summary>The price; for a metered call, its maximum.</summary>
    public long PriceMicro { get; }

    /// <summary>
    /// A metered call: hold <see cref="PriceMicro"/> with a <see cref="McpGuardLedgerEntryKind.Reservation"/> row, which
    /// <see cref="IMcpGuardLedgerStore.CaptureAsync"/> or <see cref="IMcpGuardLedgerStore.RefundAsync"/> settles later.
    /// </summary>
    public bool Reserve { get; }

    /// <summary>The account's free-tier allowance.</summary>
    public int FreeCallsPerMonth { get; }

    /// <summary>The time of the call.</summary>
    public DateTimeOffset Now { get; }

    /// <summary>
    /// Whether McpGuard made <see cref="RequestId"/> for this request (the client sent none): a new id, never charged
    /// before, so a store need not look it up in its history.
    /// </summary>
    internal bool NewRequestId { get; }
}

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
/// <param name="outcome">What happened.</param>
/// <param name="balanceMicro">The balance after the charge (or as it stands, when refused).</param>
/// <param name="spentThisMonthMicro">The month's net spend after the charge.</param>
/// <param name="monthlyCapMicro">The cap, if any.</param>
public sealed class McpGuardChargeResult(McpGuardChargeOutcome outcome, long balanceMicro, long spentThisMonthMicro, long? monthlyCapMicro)
{
    /// <summary>What happened.</summary>
    public McpGuardChargeOutcome Outcome { get; } = outcome;

    /// <summary>The balance after the charge (or as it stands, when refused).</summary>
    public long BalanceMicro { get; } = balanceMicro;

    /// <summary>The month's net spend after the charge.</summary>
    public long SpentThisMonthMicro { get; } = spentThisMonthMicro;

    /// <summary>The cap, if any.</summary>
    public long? MonthlyCapMicro { get; } = monthlyCapMicro;
}

/// <summary>
/// The money: balances, charges, refunds, top-ups, adjustments, monthly caps and the append-only ledger of rows that
/// records them. McpGuard keeps it in its SQLite file or in memory (<c>McpGuard:Store</c>); register your own
/// implementation as a singleton to keep it elsewhere. Implementations must never let a balance go below zero, charge a
/// request id at most once, refund it at most once, and keep every balance equal to the sum of the account's rows.
/// </summary>
public interface IMcpGuardLedgerStore
{
    /// <summary>
    /// Applies <paramref name="accounts"/> (configuration's starting points) if the store has no accounts yet: each account's
    /// <see cref="McpGuardAccount.BalanceMicro"/> as a seed top-up, and its <see cref="McpGuardAccount.MonthlyCapMicro"/>.
    /// Returns whether it did.
    /// </summary>
    ValueTask<bool> SeedAsync(IReadOnlyList<McpGuardAccount> accounts, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>Charges a call atomically: free tier first, then balance, then cap. Durable before it returns.</summary>
    ValueTask<McpGuardChargeResult> ChargeAsync(McpGuardChargeRequest request, CancellationToken cancellationToken);

    /// <summary>
    /// Gives a charge back with a refund row of the same amount, or a held reservation with a release row. Idempotent;
    /// false when there is nothing to give back.
    /// </summary>
    ValueTask<bool> RefundAsync(string requestId, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Settles a held reservation atomically: a release row gives the whole hold back, then a capture row takes
    /// <paramref name="amountMicro"/> (never more than the hold; the month's spend counts the capture). Returns the capture
    /// row, or null when the request holds no reservation (never reserved, captured already, or released).
    /// </summary>
    ValueTask<McpGuardLedgerEntry?> CaptureAsync(string requestId, long amountMicro, DateTimeOffset now, CancellationToken cancellationToken);

    /// <summary>
    /// Releases every reservation placed before <paramref name="placedBefore"/> that is still held: those of calls whose
    /// instance died before settling them. Returns how many it released.
    /// </summary>
    ValueTask<int> ReleaseReservationsAsync(DateTimeOffset placedBefore, DateTimeOffset now, CancellationToken cancellationToken);

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

/// <summary>
/// A ledger store that adds up its rows for the admin API's usage figures and the dashboard's charts: McpGuard's own (in
/// memory, SQLite, PostgreSQL). For a store of the app's own, the usage figures answer 409 and everything else works.
/// </summary>
internal interface ILedgerTotals
{
    /// <summary>
    /// The rows written from <paramref name="start"/> (inclusive) to <paramref name="until"/> (exclusive), added up per bucket
    /// of <paramref name="bucket"/> (bucket <c>n</c> starts at <c>start + n × bucket</c>), account, tool, kind and free flag,
    /// in no particular order. The admin API asks for at most a day, in buckets of whole minutes; the stores group in their
    /// database (over an index on the rows' time) rather than read the rows.
    /// </summary>
    ValueTask<IReadOnlyList<McpGuardLedgerTotal>> GetTotalsAsync(DateTimeOffset start, DateTimeOffset until, TimeSpan bucket, CancellationToken cancellationToken);
}
