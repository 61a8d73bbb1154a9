namespace McpGuard.Tests.Infrastructure;

/// <summary>The sample's demo API keys (their hashes are in samples/McpGuard.Sample/appsettings.json).</summary>
public static class DemoKeys
{
    /// <summary>Account alice, scopes tools:basic and tools:premium.</summary>
    public const string Alice = "mcpg_demo_alice";

    /// <summary>Account bob, scope tools:basic.</summary>
    public const string Bob = "mcpg_demo_bob";

    /// <summary>Account carol (suspended), scope tools:basic.</summary>
    public const string Carol = "mcpg_demo_carol";

    /// <summary>Revoked.</summary>
    public const string Revoked = "mcpg_demo_revoked";

    /// <summary>Expired on 2025-01-01.</summary>
    public const string Expired = "mcpg_demo_expired";

    /// <summary>Alice's opening balance in the sample's appsettings.json (micro-units).</summary>
    public const long AliceBalance = 1_000_000;

    /// <summary>Bob's opening balance in the sample's appsettings.json (micro-units): less than one <c>add</c> (800).</summary>
    public const long BobBalance = 240;
}
