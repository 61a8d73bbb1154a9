namespace McpGuard.Credits;

/// <summary>Reads the admin API needs beyond <see cref="IMcpGuardLedgerStore"/>.</summary>
internal partial class LedgerEngine
{
    /// <summary>Whether a run-time key with this id exists (revoked or not).</summary>
    public bool HasKeyId(string keyId)
    {
        lock (_lock)
        {
            return _keysById.ContainsKey(keyId);
        }
    }
}
