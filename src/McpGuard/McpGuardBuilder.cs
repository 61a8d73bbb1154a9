using Microsoft.Extensions.DependencyInjection;

namespace McpGuard;

/// <summary>Returned by <c>AddMcpGuard</c>; the optional parts of McpGuard hang off it.</summary>
public sealed class McpGuardBuilder
{
    internal McpGuardBuilder(IServiceCollection services) => Services = services;

    /// <summary>The application's services.</summary>
    public IServiceCollection Services { get; }

    /// <summary>
    /// Replaces the built-in ledger (SQLite or in-memory, per <c>McpGuard:Credits:Store</c>) with your own store.
    /// </summary>
    public McpGuardBuilder AddLedgerStore<TStore>()
        where TStore : class, IMcpGuardLedgerStore
    {
        Services.AddSingleton<TStore>();
        Services.AddSingleton(sp => new Credits.McpGuardCustomLedgerStore(sp.GetRequiredService<TStore>()));
        return this;
    }

    /// <summary>
    /// Adds a store of API keys created at run time, consulted after the keys in configuration.
    /// </summary>
    public McpGuardBuilder AddKeyStore<TStore>()
        where TStore : class, IMcpGuardKeyStore
    {
        Services.AddSingleton<IMcpGuardKeyStore, TStore>();
        return this;
    }
}
