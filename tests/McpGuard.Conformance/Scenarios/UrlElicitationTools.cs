using System.ComponentModel;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Conformance.Scenarios;

/// <summary>
/// A tool no suite scenario calls: it needs the user to finish a URL elicitation first and says so with a
/// URL-elicitation-required error (-32042). McpGuard's tests call it on this server to show the error refunded like
/// any other JSON-RPC error when the tool is priced (<c>ConformanceServerMoneyTests</c>).
/// </summary>
[McpServerToolType]
internal sealed class UrlElicitationTools
{
    [McpServerTool(Name = "test_url_elicitation_required"), Description("Needs the user to sign in at a URL first; answers with a URL-elicitation-required error.")]
    public static string UrlElicitationRequired() =>
        throw new UrlElicitationRequiredException(
            "Sign in at the billing portal first.",
            [new ElicitRequestParams { Mode = "url", ElicitationId = "conformance-sign-in", Url = "https://billing.example.com/sign-in", Message = "Sign in to continue." }]);
}
