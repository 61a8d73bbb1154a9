namespace McpGuard.Gateway;

/// <summary>mcpguard-gateway: McpGuard in front of an MCP server written in any language. See docs/gateway.md.</summary>
internal static class Program
{
    public static Task<int> Main(string[] args) => GatewayApp.RunAsync(args, Console.Out, Console.Error);
}
