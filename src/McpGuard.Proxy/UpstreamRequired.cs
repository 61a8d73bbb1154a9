using Microsoft.Extensions.Options;

namespace McpGuard.Proxy;

/// <summary>With the proxy registered, <c>McpGuard:Upstream:Url</c> is required (the rest of <c>Upstream</c> is checked by McpGuard itself).</summary>
internal sealed class UpstreamRequired : IValidateOptions<McpGuardOptions>
{
    public ValidateOptionsResult Validate(string? name, McpGuardOptions options) =>
        string.IsNullOrWhiteSpace(options.Upstream.Url)
            ? ValidateOptionsResult.Fail("McpGuard:Upstream:Url is required by the proxy: the URL of the MCP server's Streamable HTTP endpoint, for example 'http://127.0.0.1:3001/mcp'.")
            : ValidateOptionsResult.Success;
}
