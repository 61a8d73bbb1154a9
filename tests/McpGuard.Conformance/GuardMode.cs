namespace McpGuard.Conformance;

/// <summary>How the conformance server is served: bare, or behind McpGuard with API keys off or on.</summary>
internal enum GuardMode
{
    /// <summary>No McpGuard at all: no <c>AddMcpGuard</c>, <c>WithMcpGuard</c> or <c>UseMcpGuard</c>. The baseline.</summary>
    Off,

    /// <summary>McpGuard in front with its defaults and no credentials (<c>guard.keys-off.json</c>).</summary>
    KeysOff,

    /// <summary>API keys on, every MCP method anonymous, in-memory credits (<c>guard.keys-anonymous.json</c>): the suite sends no key.</summary>
    KeysAnonymous,
}

internal static class GuardModes
{
    /// <summary>The configuration key that chooses the mode: <c>--Conformance:Guard=off|keys-off|keys-anonymous</c>.</summary>
    public const string Key = "Conformance:Guard";

    public static GuardMode Parse(string? value) => value?.Trim().ToLowerInvariant() switch
    {
        null or "" or "off" => GuardMode.Off,
        "keys-off" => GuardMode.KeysOff,
        "keys-anonymous" => GuardMode.KeysAnonymous,
        _ => throw new ArgumentException($"{Key} must be off, keys-off or keys-anonymous (got '{value}')."),
    };

    /// <summary>The name used on the command line and in <c>guard.&lt;name&gt;.json</c>.</summary>
    public static string Name(this GuardMode mode) => mode switch
    {
        GuardMode.Off => "off",
        GuardMode.KeysOff => "keys-off",
        GuardMode.KeysAnonymous => "keys-anonymous",
        _ => throw new ArgumentOutOfRangeException(nameof(mode)),
    };
}
