namespace McpGuard;

/// <summary>
/// The names of McpGuard's own authentication schemes, which <c>AddMcpGuard</c> registers without touching the app's
/// default scheme. The app may use them too, for example <c>[Authorize(AuthenticationSchemes = McpGuardSchemes.ApiKey)]</c>
/// on an endpoint of its own that takes McpGuard's API keys.
/// </summary>
public static class McpGuardSchemes
{
    /// <summary>API keys from <c>McpGuard:Auth:ApiKeys</c> and the API key store.</summary>
    public const string ApiKey = "McpGuard.ApiKey";

    /// <summary>JWT bearer tokens validated as <c>McpGuard:Auth:Jwt</c> says (McpGuard's own JwtBearer scheme).</summary>
    public const string Jwt = "McpGuard.Jwt";

    /// <summary>
    /// The admin key of <c>McpGuard:Admin:KeyHash</c>, sent as <c>Authorization: Bearer &lt;admin key&gt;</c>: what protects the
    /// admin API (<c>MapMcpGuardAdmin</c>) unless <c>McpGuard:Admin:Policy</c> names an app policy instead.
    /// </summary>
    public const string AdminKey = "McpGuard.AdminKey";

    internal static readonly string[] ApiKeyOnly = [ApiKey];

    internal static readonly string[] JwtOnly = [Jwt];

    /// <summary>Whether <paramref name="scheme"/> is one of McpGuard's own.</summary>
    internal static bool IsOwn(string scheme) => scheme.StartsWith("McpGuard.", StringComparison.Ordinal);
}
