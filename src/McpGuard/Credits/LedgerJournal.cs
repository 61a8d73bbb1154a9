namespace McpGuard.Credits;

/// <summary>One durable change: a ledger row and/or a change of an account's row. The rare part is a reference, so the common write (one row per charge) stays small.</summary>
internal sealed record JournalWrite
{
    public McpGuardLedgerEntry? Entry { get; init; }

    /// <summary>Insert or update the account row (its cap).</summary>
    public JournalAccount? Account { get; init; }
}

/// <summary>An account row as written: its cap, and when it was created.</summary>
internal sealed record JournalAccount(string Id, long? Cap, DateTimeOffset Now);

/// <summary>Everything the engine needs to rebuild its state on start.</summary>
internal sealed record LedgerSnapshot(
    IReadOnlyList<McpGuardLedgerEntry> Entries,
    IReadOnlyList<(string Id, long? Cap)> Accounts);

/// <summary>Where the engine's changes become durable, in the order the engine made them.</summary>
internal abstract class LedgerJournal : IAsyncDisposable
{
    public abstract LedgerSnapshot Load();

    /// <summary>Queues a change; the task completes when it is durable. Called in the engine's order, under its lock.</summary>
    public abstract Task AppendAsync(JournalWrite write);

    /// <summary>
    /// Called after <see cref="AppendAsync"/>, outside the engine's lock: may make what is queued durable on the calling
    /// thread (so its task is complete on return), or leave it to a commit already running.
    /// </summary>
    public virtual void Flush()
    {
    }

    /// <summary>Told once, when a write failed: every change queued from then on fails too.</summary>
    public Action<Exception>? OnFailed { get; set; }

    public abstract ValueTask<IReadOnlyList<McpGuardLedgerEntry>> ReadAsync(string account, long? before, int limit, CancellationToken cancellationToken);

    public virtual ValueTask DisposeAsync() => ValueTask.CompletedTask;
}

/// <summary>The in-memory journal: rows kept per account in process memory, gone on restart.</summary>
internal sealed class InMemoryJournal : LedgerJournal
{
    private readonly Dictionary<string, List<McpGuardLedgerEntry>> _rows = new(StringComparer.Ordinal);
    private readonly Lock _lock = new();

    public override LedgerSnapshot Load() => new([], []);

    public override Task AppendAsync(JournalWrite write)
    {
        if (write.Entry is { } entry)
        {
            lock (_lock)
            {
                if (!_rows.TryGetValue(entry.Account, out var rows))
                {
                    _rows[entry.Account] = rows = [];
                }

                rows.Add(entry);
            }
        }

        return Task.CompletedTask;
    }

    public override ValueTask<IReadOnlyList<McpGuardLedgerEntry>> ReadAsync(string account, long? before, int limit, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            IReadOnlyList<McpGuardLedgerEntry> page = _rows.TryGetValue(account, out var rows)
                ? [.. rows.Where(r => before is null || r.Id < before).OrderByDescending(r => r.Id).Take(limit)]
                : [];
            return ValueTask.FromResult(page);
        }
    }
}
