using System.Globalization;

namespace McpGuard.Tests.Infrastructure;

/// <summary>
/// McpGuard configuration for an app a test builds (<see cref="GuardedHost.StartAsync"/>, <see cref="GuardedHost.StartMcpAsync"/>):
/// the demo API keys, credits and their opening balances, without each test copying the entries.
/// </summary>
public static class GuardConfiguration
{
    /// <summary>The protected resource a test-built app names.</summary>
    public const string Resource = "http://127.0.0.1/mcp";

    /// <summary>An API key entry: the secret a client sends (its hash goes in the configuration), the key's id, its account and scopes.</summary>
    public sealed record Key(string Secret, string Id, string Account, IReadOnlyList<string> Scopes);

    /// <summary>Alice's demo key, as key <c>k-alice</c> of account alice.</summary>
    public static Key Alice(params string[] scopes) => new(DemoKeys.Alice, "k-alice", "alice", scopes);

    /// <summary>Bob's demo key, as key <c>k-bob</c> of account bob.</summary>
    public static Key Bob(params string[] scopes) => new(DemoKeys.Bob, "k-bob", "bob", scopes);

    /// <summary><c>Auth:Resource</c> (<see cref="Resource"/>), API keys on, and one <c>Auth:ApiKeys:Keys</c> entry per key, in order.</summary>
    public static Dictionary<string, string?> ApiKeys(params Key[] keys)
    {
        var configuration = new Dictionary<string, string?>
        {
            ["McpGuard:Auth:Resource"] = Resource,
            ["McpGuard:Auth:ApiKeys:Enabled"] = "true",
        };
        for (var i = 0; i < keys.Length; i++)
        {
            var prefix = $"McpGuard:Auth:ApiKeys:Keys:{i}";
            configuration[$"{prefix}:Id"] = keys[i].Id;
            configuration[$"{prefix}:Account"] = keys[i].Account;
            configuration[$"{prefix}:Hash"] = McpGuardApiKey.Hash(keys[i].Secret);
            for (var j = 0; j < keys[i].Scopes.Count; j++)
            {
                configuration[$"{prefix}:Scopes:{j}"] = keys[i].Scopes[j];
            }
        }

        return configuration;
    }

    /// <summary>Credits on, in <paramref name="store"/> (<c>InMemory</c>, <c>Sqlite</c>), each account opening with its balance.</summary>
    public static Dictionary<string, string?> WithCredits(this Dictionary<string, string?> configuration, string store, params (string Account, long Balance)[] accounts)
    {
        configuration["McpGuard:Credits:Enabled"] = "true";
        configuration["McpGuard:Store"] = store;
        foreach (var (account, balance) in accounts)
        {
            configuration[$"McpGuard:Accounts:{account}:InitialBalance"] = balance.ToString(CultureInfo.InvariantCulture);
        }

        return configuration;
    }

    /// <summary>Adds <paramref name="more"/>, replacing entries with the same key.</summary>
    public static Dictionary<string, string?> With(this Dictionary<string, string?> configuration, IReadOnlyDictionary<string, string?>? more)
    {
        foreach (var (key, value) in more ?? new Dictionary<string, string?>())
        {
            configuration[key] = value;
        }

        return configuration;
    }
}
