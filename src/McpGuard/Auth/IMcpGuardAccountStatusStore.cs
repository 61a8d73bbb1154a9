namespace McpGuard;

/// <summary>
/// Which accounts are suspended by the admin API (accounts suspended in configuration stay in configuration). Asked on
/// every authenticated request, so implementations answer from memory. McpGuard keeps it in its SQLite file or in
/// memory (<c>McpGuard:Store</c>); register your own implementation as a singleton to keep it elsewhere.
/// </summary>
public interface IMcpGuardAccountStatusStore
{
    /// <summary>Whether the account is suspended.</summary>
    ValueTask<bool> IsSuspendedAsync(string account, CancellationToken cancellationToken);

    /// <summary>Suspends or reactivates the account.</summary>
    ValueTask SetSuspendedAsync(string account, bool suspended, CancellationToken cancellationToken);
}
