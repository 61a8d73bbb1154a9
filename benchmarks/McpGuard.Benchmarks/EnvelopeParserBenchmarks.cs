using System.Text;
using BenchmarkDotNet.Attributes;
using McpGuard.Protocol;

namespace McpGuard.Benchmarks;

/// <summary>Which body the parser reads.</summary>
public enum EnvelopeBody
{
    /// <summary>A <c>tools/call</c> with arguments and <c>_meta</c>, as an SDK client sends it after initialization.</summary>
    ToolsCall,

    /// <summary>An <c>initialize</c> with capabilities and client info, no protocol-version header yet.</summary>
    Initialize,

    /// <summary><c>notifications/initialized</c>.</summary>
    Notification,
}

/// <summary>
/// The front door's envelope parse of one buffered body (UTF-8 validation and one <c>Utf8JsonReader</c> pass).
/// The target: under 1 µs, allocating nothing beyond the envelope and the strings it must keep (the tool name).
/// </summary>
[MemoryDiagnoser]
[Config(typeof(MicroConfig))]
public class EnvelopeParserBenchmarks
{
    internal const string ToolsCallJson =
        """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"rate limits per tool","limit":10,"filters":{"lang":["en","de"],"since":"2025-01-01"}},"_meta":{"progressToken":"tok-7"}}}""";

    internal const string InitializeJson =
        """{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{"roots":{"listChanged":true},"sampling":{},"elicitation":{}},"clientInfo":{"name":"example-client","title":"Example Client","version":"1.4.2"}}}""";

    internal const string NotificationJson = """{"jsonrpc":"2.0","method":"notifications/initialized"}""";

    private byte[] _body = [];
    private string _protocolVersionHeader = "";

    /// <summary>The body under test.</summary>
    [Params(EnvelopeBody.ToolsCall, EnvelopeBody.Initialize, EnvelopeBody.Notification)]
    public EnvelopeBody Body { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        (_body, _protocolVersionHeader) = Body switch
        {
            EnvelopeBody.ToolsCall => (Encoding.UTF8.GetBytes(ToolsCallJson), "2025-06-18"),
            EnvelopeBody.Initialize => (Encoding.UTF8.GetBytes(InitializeJson), ""),
            _ => (Encoding.UTF8.GetBytes(NotificationJson), "2025-06-18"),
        };

        if (Parse() is null)
        {
            throw new InvalidOperationException($"The {Body} body was refused.");
        }
    }

    /// <summary>One parse, as the front door calls it.</summary>
    [Benchmark]
    public object? Parse() =>
        McpEnvelopeParser.TryParse(_body, _protocolVersionHeader, 64, out var envelope, out _) ? envelope : null;
}
