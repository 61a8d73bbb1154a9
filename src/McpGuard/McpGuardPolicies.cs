namespace McpGuard;

/// <summary>What McpGuard enforces for one tool, keyed by tool name under <c>McpGuard:Tools</c>.</summary>
/// <example><code>"Tools": { "premium_report": { "Scopes": [ "tools:premium" ] } }</code></example>
internal sealed class McpGuardToolPolicy
{
    /// <summary>Scopes a caller needs, all of them, to call the tool.</summary>
    public IList<string> Scopes { get; } = [];

    /// <summary>The rate-limit policy (a name under <c>McpGuard:RateLimits:Policies</c>) for this tool, checked with the default policy.</summary>
    public string? RateLimitPolicy { get; set; }

    /// <summary>The price of one call in micro-units; <c>McpGuard:Credits:DefaultPrice</c> when unset. 0 is free.</summary>
    public long? Price { get; set; }

    /// <summary>Whether the tool is offered (the admin API can override it at run time). Default <see cref="McpGuardToolStatus.Live"/>.</summary>
    public McpGuardToolStatus Status { get; set; } = McpGuardToolStatus.Live;
}

/// <summary>What McpGuard enforces for one MCP method (other than <c>tools/call</c>), keyed by method under <c>McpGuard:Methods</c>.</summary>
/// <example><code>"Methods": { "resources/read": { "Scopes": [ "resources:read" ] } }</code></example>
internal sealed class McpGuardMethodPolicy
{
    /// <summary>Scopes a caller needs, all of them, to call the method.</summary>
    public IList<string> Scopes { get; } = [];

    /// <summary>The rate-limit policy for this method, checked with the default policy (when the method counts).</summary>
    public string? RateLimitPolicy { get; set; }

    /// <summary>The price of one call of this method in micro-units. Unset is free.</summary>
    public long? Price { get; set; }
}

/// <summary>An account (the billing party a key or token belongs to), keyed by account id under <c>McpGuard:Accounts</c>.</summary>
internal sealed class McpGuardAccountOptions
{
    /// <summary>A suspended account is refused with 403 <c>suspended</c> (the admin API can also suspend and reactivate).</summary>
    public bool Suspended { get; set; }

    /// <summary>The balance the account starts with, in micro-units: a seed top-up applied once, on the first start of an empty ledger.</summary>
    public long InitialBalance { get; set; }

    /// <summary>The monthly spending cap the account starts with, in micro-units (the admin API can change it). None when unset.</summary>
    public long? MonthlyCap { get; set; }

    /// <summary>Priced calls per calendar month (UTC) that cost nothing. Default 0.</summary>
    public int FreeCallsPerMonth { get; set; }
}
