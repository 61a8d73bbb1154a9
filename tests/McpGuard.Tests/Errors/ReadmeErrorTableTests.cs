using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using McpGuard.Errors;

namespace McpGuard.Tests.Errors;

/// <summary>The error table in docs/errors.md is the catalog, row for row; a change to one without the other fails here.</summary>
public sealed partial class ReadmeErrorTableTests
{
    private const string StartMarker = "<!-- error-table:start -->";
    private const string EndMarker = "<!-- error-table:end -->";

    /// <summary>The page that holds the table (the error reference), relative to the repository root.</summary>
    private const string Page = "docs/errors.md";

    private static readonly string[] Header = ["reason", "HTTP", "JSON-RPC code", "retryable", "client action", "default message"];

    [GeneratedRegex("^:?-{3,}:?$")]
    private static partial Regex SeparatorCell();

    /// <summary>The table as it must appear between the markers.</summary>
    internal static string ExpectedTable()
    {
        var table = new StringBuilder();
        table.Append("| ").AppendJoin(" | ", Header).Append(" |\n");
        table.Append('|').Append(string.Concat(Enumerable.Repeat("---|", Header.Length))).Append('\n');
        foreach (var row in ExpectedRows())
        {
            table.Append("| ").AppendJoin(" | ", row).Append(" |\n");
        }

        return table.ToString();
    }

    private static IEnumerable<string[]> ExpectedRows() =>
        McpGuardErrorCatalog.Defaults.Select(d => new[]
        {
            $"`{d.Reason}`",
            d.StatusCode == 200 ? "200 (in-band)" : d.StatusCode.ToString(CultureInfo.InvariantCulture),
            d.Code.ToString(CultureInfo.InvariantCulture),
            d.Retryable ? "yes" : "no",
            $"`{d.ActionName}`",
            d.Message,
        });

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "McpGuard.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No folder above {AppContext.BaseDirectory} contains McpGuard.sln.");
    }

    private static string[] Cells(string line)
    {
        var trimmed = line.Trim();
        Assert.True(trimmed.StartsWith('|') && trimmed.EndsWith('|') && trimmed.Length > 1, $"Not a table row: '{line}'\n\n{Advice()}");
        return trimmed[1..^1].Split('|').Select(c => c.Trim()).ToArray();
    }

    private static string Advice() =>
        $"{Page} must hold the error table between '{StartMarker}' and '{EndMarker}', exactly as McpGuardErrorCatalog.Defaults has it:\n\n{ExpectedTable()}";

    [Fact]
    public void The_expected_table_has_one_row_per_catalog_entry_in_catalog_order()
    {
        var lines = ExpectedTable().Split('\n', StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(2 + McpGuardErrorCatalog.Defaults.Count, lines.Length);
        Assert.Equal("| reason | HTTP | JSON-RPC code | retryable | client action | default message |", lines[0]);
        Assert.Equal("|---|---|---|---|---|---|", lines[1]);
        Assert.Equal("| `parse_error` | 400 | -32700 | no | `fix_request` | Parse error |", lines[2]);
        Assert.Equal("| `invalid_parameter` | 200 (in-band) | -32602 | no | `fix_request` | Invalid parameter |", lines.Single(l => l.Contains("`invalid_parameter`", StringComparison.Ordinal)));
        Assert.Equal("| `rate_limited` | 429 | -31201 | yes | `back_off` | Rate limit exceeded |", lines.Single(l => l.Contains("`rate_limited`", StringComparison.Ordinal)));
    }

    [Fact]
    public void The_documented_error_table_matches_the_catalog()
    {
        var path = Path.Combine(FindRepositoryRoot(), "docs", "errors.md");
        Assert.True(File.Exists(path), $"{path} does not exist.\n\n{Advice()}");
        var text = File.ReadAllText(path).ReplaceLineEndings("\n");

        var start = text.IndexOf(StartMarker, StringComparison.Ordinal);
        var end = text.IndexOf(EndMarker, StringComparison.Ordinal);
        Assert.True(start >= 0 && end > start, $"{Page} lacks the markers, or they are out of order.\n\n{Advice()}");
        Assert.True(
            text.IndexOf(StartMarker, start + 1, StringComparison.Ordinal) < 0 && text.IndexOf(EndMarker, end + 1, StringComparison.Ordinal) < 0,
            $"{Page} holds more than one pair of error-table markers.\n\n{Advice()}");

        var lines = text[(start + StartMarker.Length)..end]
            .Split('\n')
            .Where(l => !string.IsNullOrWhiteSpace(l))
            .ToList();
        Assert.True(lines.Count >= 2, $"The error table has no header.\n\n{Advice()}");

        Assert.True(Header.SequenceEqual(Cells(lines[0])), $"Wrong header: '{lines[0]}'\n\n{Advice()}");
        var separator = Cells(lines[1]);
        Assert.True(separator.Length == Header.Length && separator.All(c => SeparatorCell().IsMatch(c)), $"Wrong separator row: '{lines[1]}'\n\n{Advice()}");

        var expected = ExpectedRows().Select(r => string.Join(" | ", r)).ToList();
        var actual = lines.Skip(2).Select(l => string.Join(" | ", Cells(l))).ToList();
        for (var i = 0; i < Math.Max(expected.Count, actual.Count); i++)
        {
            var want = i < expected.Count ? expected[i] : "(no more rows)";
            var got = i < actual.Count ? actual[i] : "(no more rows)";
            Assert.True(
                string.Equals(want, got, StringComparison.Ordinal),
                $"{Page}'s error table differs from the catalog at row {i + 1}:\n  expected: | {want} |\n  actual:   | {got} |\n\n{Advice()}");
        }
    }
}
