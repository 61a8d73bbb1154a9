namespace McpGuard;

/// <summary>
/// Spend and credit gates: prices per call in micro-units, prepaid balances, free tiers, monthly caps and a
/// durable ledger with automatic refunds. Bound from <c>McpGuard:Credits</c>. Prices live on tools
/// (<c>McpGuard:Tools:&lt;tool&gt;:Price</c>) and methods; accounts under <c>McpGuard:Accounts</c>.
/// </summary>
/// <example>
/// <code>
/// "Credits": {
///   "Enabled": true,
///   "TopUpUrl": "https://billing.example.com/topup"
/// }
/// </code>
/// </example>
internal sealed class McpGuardCreditOptions
{
    /// <summary>Charge for calls. Default false.</summary>
    public bool Enabled { get; set; }

    /// <summary>Deprecated: use <c>McpGuard:Store</c>, which places every store. Still honoured when that is not set, with a warning at start.</summary>
    public McpGuardStoreKind? Store { get; set; }

    /// <summary>Deprecated: use <c>McpGuard:SqlitePath</c>. Still honoured when that is not set, with a warning at start.</summary>
    public string? SqlitePath { get; set; }

    /// <summary>
    /// How hard SQLite works to keep a commit. <see cref="McpGuardLedgerDurability.ProcessCrash"/> (default): a charge
    /// is in the WAL before the caller is answered, so it survives the server being killed (even with SIGKILL).
    /// <see cref="McpGuardLedgerDurability.PowerLoss"/> also fsyncs every group commit, so it survives the machine
    /// losing power, at the cost of one disk flush on the path of every priced call.
    /// </summary>
    public McpGuardLedgerDurability Durability { get; set; } = McpGuardLedgerDurability.ProcessCrash;

    /// <summary>The price of a <c>tools/call</c> whose tool has no price of its own, in micro-units. Default 0.</summary>
    public long DefaultPrice { get; set; }

    /// <summary>
    /// Methods that never cost anything, whatever <see cref="DefaultPrice"/> says. Default: <c>initialize</c>, <c>ping</c>,
    /// <c>server/discover</c>, the list methods and <c>completion/complete</c>. Notifications and responses are always free.
    /// </summary>
    public IList<string> FreeMethods { get; } = [];

    /// <summary>Where a client tops up; sent as <c>topup_url</c> with <c>out_of_credit</c>.</summary>
    public string? TopUpUrl { get; set; }

    /// <summary>How long a priced call may take before it is cancelled, refunded and answered 504 <c>upstream_timeout</c>. Default 30 s.</summary>
    public TimeSpan UpstreamTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Keep usage and refund rows this many days, then roll them into per-account, per-tool, per-day totals (SQLite store;
    /// balances and the money invariant are unchanged, top-ups and adjustments stay rows). Checked at start and hourly.
    /// A request id is a duplicate only while its row is kept. Default null: keep every row.
    /// </summary>
    public int? RetentionDays { get; set; }

    /// <summary>Also refund calls whose tool failed with <c>internal_error</c> under <c>WithMcpGuard()</c>. Default false: a tool result, even an error, is the tool answering.</summary>
    public bool RefundToolInternalErrors { get; set; }

    internal static readonly string[] DefaultFreeMethods =
    [
        "initialize", "ping", "server/discover", "tools/list", "resources/list", McpGuard.Protocol.McpMethods.ResourcesTemplatesList,
        "prompts/list", "completion/complete", "logging/setLevel",
    ];
}

/// <summary>What an acknowledged charge survives (SQLite store).</summary>
internal enum McpGuardLedgerDurability
{
    /// <summary>The server process dying, however abruptly (WAL with <c>synchronous=NORMAL</c>). The default.</summary>
    ProcessCrash,

    /// <summary>The machine losing power too (WAL with <c>synchronous=FULL</c>: an fsync per group commit).</summary>
    PowerLoss,
}

/// <summary>Where McpGuard's stores live (<c>McpGuard:Store</c>).</summary>
internal enum McpGuardStoreKind
{
    /// <summary>One SQLite file (<c>McpGuard:SqlitePath</c>), durable across restarts.</summary>
    Sqlite,

    /// <summary>Process memory: gone on restart. For tests and throwaway servers.</summary>
    InMemory,

    /// <summary>PostgreSQL (<c>McpGuard:PostgreSql:ConnectionString</c>; package McpGuard.PostgreSql), shared by every instance.</summary>
    PostgreSql,
}

/// <summary>Whether a tool is offered.</summary>
public enum McpGuardToolStatus
{
    /// <summary>Offered.</summary>
    Live,

    /// <summary>Paused by its publisher: 503 <c>tool_paused</c>, retry later.</summary>
    Paused,

    /// <summary>Withdrawn: 410 <c>tool_archived</c>, do not retry.</summary>
    Archived,
}
