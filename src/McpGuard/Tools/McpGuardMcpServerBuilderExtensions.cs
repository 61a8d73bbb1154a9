using McpGuard;
using McpGuard.Tools;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Adds McpGuard's tool-layer behaviour to a C# SDK MCP server.</summary>
public static class McpGuardMcpServerBuilderExtensions
{
    /// <summary>
    /// Translates exceptions thrown by tools into <c>isError: true</c> results whose first text line is
    /// <c>**Error code:** &lt;reason&gt;</c>, with the same data in <c>structuredContent</c>. Independent of the
    /// HTTP guard: it also works on a server McpGuard does not front, and the guard does not need it.
    /// Behind the guard, <c>tools/list</c> also shows each caller only the tools its scopes allow; the lists carry each
    /// priced item's price (<c>_meta["mcpguard/price"]</c>) and the caller's balance (<c>_meta["mcpguard/account"]</c>); and a
    /// priced call's result carries what it cost (<c>_meta["mcpguard/charge"]</c>), a metered tool's reported units
    /// (<c>_meta["mcpguard/units"]</c>) being captured at its rate.
    /// </summary>
    public static IMcpServerBuilder WithMcpGuard(this IMcpServerBuilder builder, Action<McpGuardToolOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var options = new McpGuardToolOptions();
        configure?.Invoke(options);
        var filter = new McpGuardToolExceptionFilter(options);
        builder.WithRequestFilters(filters =>
        {
            filters.AddCallToolFilter(filter.Wrap);
            filters.AddListToolsFilter(McpGuardToolListFilter.Wrap);
            filters.AddListPromptsFilter(McpGuardToolListFilter.WrapPrompts);
            filters.AddListResourcesFilter(McpGuardToolListFilter.WrapResources);
            filters.AddListResourceTemplatesFilter(McpGuardToolListFilter.WrapResourceTemplates);
        });
        return builder;
    }
}
