using System.ComponentModel;
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

    [McpServerTool(Name = "premium_report"), Description("Writes a short report on a topic (a premium tool).")]
    public static string PremiumReport([Description("What the report is about.")] string topic) =>
        $"Premium report on {topic}: demand is steady, risks are known, and the outlook is fair.";
}
