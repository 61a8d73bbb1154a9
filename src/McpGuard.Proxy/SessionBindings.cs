using System.Collections.Concurrent;

namespace McpGuard.Proxy;

/// <summary>
/// Which caller each upstream session belongs to. The upstream cannot tell callers apart (the proxy never passes their
/// credentials on), so the proxy binds a session to the account that opened it (the caller whose request the upstream
/// answered with a new <c>Mcp-Session-Id</c>) and refuses the id to everyone else, as the C# SDK's <c>MapMcp()</c> does
/// for its own sessions. Holds at most <see cref="Capacity"/> sessions; the oldest are forgotten first (their clients
/// get 404 and start new sessions, as the MCP specification tells them to).
/// </summary>
internal sealed class SessionBindings
{
    internal const int Capacity = 100_000;

    /// <summary>The owner of a session opened without credentials (authentication off, or an anonymous initialize).</summary>
    internal const string Anonymous = "";

    // Each binding carries a ticket; the queue remembers the order bindings were made in, with their tickets, so that an
    // entry whose binding was forgotten (or made again) never removes a newer one, and the queue itself stays bounded.
    private readonly ConcurrentDictionary<string, (string Owner, long Ticket)> _owners = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(string SessionId, long Ticket)> _order = new();
    private long _tickets;

    public void Bind(string sessionId, string owner)
    {
        var ticket = Interlocked.Increment(ref _tickets);
        if (_owners.TryAdd(sessionId, (owner, ticket)))
        {
            _order.Enqueue((sessionId, ticket));
            while (_order.Count > Capacity && _order.TryDequeue(out var oldest))
            {
                if (_owners.TryGetValue(oldest.SessionId, out var bound) && bound.Ticket == oldest.Ticket)
                {
                    // Only the binding this entry was made for (removed if it is still the same one).
                    _owners.TryRemove(new KeyValuePair<string, (string, long)>(oldest.SessionId, bound));
                }
            }
        }
    }

    /// <summary>Whether <paramref name="owner"/> opened the session through this proxy (and it has not ended since).</summary>
    public bool IsOwnedBy(string sessionId, string owner) =>
        _owners.TryGetValue(sessionId, out var bound) && string.Equals(bound.Owner, owner, StringComparison.Ordinal);

    public void Forget(string sessionId) => _owners.TryRemove(sessionId, out _);
}
