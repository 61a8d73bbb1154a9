using System.ComponentModel;
using System.Text.Json.Nodes;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Sample;

/// <summary>The sample's tools: one for each behaviour McpGuard shows.</summary>
[McpServerToolType]
public sealed class SampleTools
{
    [McpServerTool(Name = "echo"), Description("Returns the message unchanged.")]
    public static string Echo([Description("The text to echo.")] string message) => message;

    [McpServerTool(Name = "add"), Description("Adds two integers.")]
    public static long Add(long a, long b) => checked(a + b);

    [McpServerTool(Name = "slow"), Description("Waits the given number of milliseconds (at most 120000), then answers.")]
    public static async Task<string> Slow([Description("How long to wait, in milliseconds.")] int ms, CancellationToken cancellationToken)
    {
        if (ms is < 0 or > 120_000)
        {
            throw new ArgumentOutOfRangeException(nameof(ms), ms, "ms must be between 0 and 120000.");
        }

        await Task.Delay(ms, cancellationToken);
        return $"waited {ms} ms";
    }

    [McpServerTool(Name = "fail"), Description("Fails on purpose: kind is argument, not_found, forbidden, timeout or crash.")]
    public static string Fail([Description("argument | not_found | forbidden | timeout | crash")] string kind) => kind switch
    {
        "argument" => throw new ArgumentException("kind=argument was asked to fail: the argument is rejected.", nameof(kind)),
        "not_found" => throw new KeyNotFoundException("record 42 in table secret_customers was not found"),
        "forbidden" => throw new UnauthorizedAccessException("access to /srv/secret/path denied"),
        "timeout" => throw new TimeoutException("upstream db timed out after 30s at 10.0.0.7"),
        "crash" => throw new InvalidOperationException("connection string Server=db;Password=hunter2 is broken"),
        _ => throw new ArgumentException($"Unknown kind '{kind}'. Use argument, not_found, forbidden, timeout or crash.", nameof(kind)),
    };

    /// <summary>What <c>search</c> looks through: forty fruits.</summary>
    private static readonly string[] Fruits =
    [
        "apple", "apricot", "avocado", "banana", "bilberry", "blackberry", "blackcurrant", "blueberry", "cantaloupe", "cherry",
        "clementine", "coconut", "cranberry", "damson", "date", "dragonfruit", "elderberry", "fig", "gooseberry", "grape",
        "grapefruit", "guava", "honeydew", "kiwi", "kumquat", "lemon", "lime", "lychee", "mango", "melon",
        "mulberry", "nectarine", "orange", "papaya", "peach", "pear", "pineapple", "plum", "raspberry", "strawberry",
    ];

    /// <summary>
    /// A metered tool: it costs per result returned. It reports the results it returned in <c>_meta["mcpguard/units"]</c>,
    /// which McpGuard reads, charges at the tool's rate (McpGuard:Tools:search:Price:PerUnitMicro) and takes out.
    /// </summary>
    [McpServerTool(Name = "search"), Description("Finds fruits whose name contains the query; charged per result returned.")]
    public static CallToolResult Search([Description("Text to look for.")] string query, [Description("The most results to return (1 to 10).")] int limit = 10)
    {
        if (limit is < 1 or > 10)
        {
            throw new ArgumentOutOfRangeException(nameof(limit), limit, "limit must be between 1 and 10.");
        }

        var found = Fruits.Where(f => f.Contains(query, StringComparison.OrdinalIgnoreCase)).Take(limit).ToArray();
        return new CallToolResult
        {
            Content = [new TextContentBlock { Text = found.Length == 0 ? "no fruit matches" : string.Join(", ", found) }],
            Meta = new JsonObject { ["mcpguard/units"] = found.Length },
        };
    }

    [McpServerTool(Name = "premium_report"), Description("Writes a short report on a topic (a premium tool).")]
    public static string PremiumReport([Description("What the report is about.")] string topic) =>
        $"Premium report on {topic}: demand is steady, risks are known, and the outlook is fair.";
}
