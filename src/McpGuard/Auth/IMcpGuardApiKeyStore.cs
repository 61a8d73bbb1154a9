namespace McpGuard;

/// <summary>
/// API keys created at run time (the admin API adds and revokes them). Keys in configuration never come here and
/// are checked first. A store knows a key only by the SHA-256 of the whole key, so a lookup's timing says nothing
/// useful about any secret. McpGuard keeps them in its SQLite file or in memory (<c>McpGuard:Store</c>); register your
/// own implementation as a singleton to keep them elsewhere.
/// </summary>
public interface IMcpGuardApiKeyStore
{
    /// <summary>The key whose SHA-256 (32 bytes) is <paramref name="sha256"/>, or null. Called on every request with an unknown key.</summary>
    ValueTask<McpGuardApiKey?> FindAsync(ReadOnlyMemory<byte> sha256, CancellationToken cancellationToken);

    /// <summary>Stores a new key under its hash. Throws <see cref="InvalidOperationException"/> when its id or hash is taken.</summary>
    ValueTask AddAsync(McpGuardApiKey key, ReadOnlyMemory<byte> sha256, CancellationToken cancellationToken);

    /// <summary>Revokes a key for good; false when there is no key with that id.</summary>
    ValueTask<bool> RevokeAsync(string keyId, CancellationToken cancellationToken);
}
