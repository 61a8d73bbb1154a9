namespace McpGuard;

/// <summary>
/// Tools paused or archived through the admin API, overriding <c>McpGuard:Tools:&lt;tool&gt;:Status</c>. Asked on every
/// tool call, so implementations answer from memory. McpGuard keeps it in its SQLite file or in memory
/// (<c>McpGuard:Store</c>); register your own implementation as a singleton to keep it elsewhere.
/// </summary>
public interface IMcpGuardToolStatusStore
{
    /// <summary>The tool's overriding status, or null when configuration decides.</summary>
    ValueTask<McpGuardToolStatus?> GetStatusAsync(string tool, CancellationToken cancellationToken);

    /// <summary>Sets the tool's overriding status; null removes the override.</summary>
    ValueTask SetStatusAsync(string tool, McpGuardToolStatus? status, CancellationToken cancellationToken);
}
