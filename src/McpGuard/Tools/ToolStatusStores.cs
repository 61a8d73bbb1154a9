using McpGuard.Storage;

namespace McpGuard.Tools;

/// <summary>Tool status overrides in memory, backed by the <c>tool_status</c> table of McpGuard's SQLite file unless the store is in memory.</summary>
internal sealed class ToolStatusStore : IDisposable, IMcpGuardToolStatusStore
{
    private readonly PersistentMap<McpGuardToolStatus> _statuses;

    /// <summary>In memory, gone on restart.</summary>
    public ToolStatusStore() => _statuses = new();

    public ToolStatusStore(SqliteDatabase database) =>
        _statuses = new(
            database,
            "SELECT tool, status FROM tool_status;",
            "INSERT INTO tool_status (tool, status) VALUES ($key, $value) ON CONFLICT (tool) DO UPDATE SET status = excluded.status;",
            "DELETE FROM tool_status WHERE tool = $key;",
            reader => Enum.Parse<McpGuardToolStatus>(reader.GetString(1)),
            status => status.ToString());

    public ValueTask<McpGuardToolStatus?> GetStatusAsync(string tool, CancellationToken cancellationToken) =>
        ValueTask.FromResult(_statuses.Get(tool));

    public ValueTask SetStatusAsync(string tool, McpGuardToolStatus? status, CancellationToken cancellationToken) =>
        _statuses.SetAsync(tool, status, cancellationToken);

    public void Dispose() => _statuses.Dispose();
}
