using System.ComponentModel;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Conformance.Scenarios;

/// <summary>
/// Tools the 2026-07-28 scenarios use to watch the framework rather than the tool (<c>server-stateless</c>, SEP-2575),
/// and one whose argument is mirrored into an <c>Mcp-Param-Region</c> header (<c>http-custom-header-server-validation</c>, SEP-2243).
/// </summary>
[McpServerToolType]
internal sealed class StatelessTools
{
    [McpServerTool(Name = "test_missing_capability"), Description("Needs the sampling capability; without it the client gets -32021.")]
    public static string MissingCapability(McpServer server) =>
        server.ClientCapabilities?.Sampling is not null
            ? "The client declared sampling."
            : throw new MissingRequiredClientCapabilityException(new ClientCapabilities { Sampling = new() }, "This tool needs the sampling capability.");

    [McpServerTool(Name = "test_streaming_elicitation"), Description("Answers with a result only: its stream carries no request of the server's own.")]
    public static string StreamingElicitation() => "result frames only";

    [McpServerTool(Name = "test_logging_tool"), Description("Tries to log; the framework drops it unless the request asked for a log level.")]
    public static string LoggingTool(McpServer server)
    {
        var log = server.AsClientLoggerProvider().CreateLogger("conformance");
#pragma warning disable CA1848 // A message for the MCP client, not the server's own log.
        log.LogInformation("test_logging_tool ran");
#pragma warning restore CA1848
        return "Logged, if the request asked for it.";
    }

    [McpServerTool(Name = "test_header_tool"), Description("Echoes its arguments; region travels in the Mcp-Param-Region header too.")]
    public static string HeaderTool([McpHeader("Region"), Description("Where to run")] string region, [Description("What to run")] string query) =>
        $"Ran '{query}' in {region}";
}
