using McpGuard.Tests.Docs;

namespace McpGuard.Tests.Integration;

/// <summary>
/// The public API is what a user configures, calls or implements, and it fits on a page: PublicApiAnalyzers keeps
/// src/McpGuard/PublicAPI.*.txt equal to the compiled surface (a build error otherwise); this keeps the files short.
/// </summary>
public sealed class PublicApiTests
{
    [Fact]
    public void The_public_api_files_hold_at_most_150_lines_in_all()
    {
        var folder = Path.Combine(DocsTranscriptTests.RepositoryRoot(), "src", "McpGuard");
        var lines = File.ReadAllLines(Path.Combine(folder, "PublicAPI.Shipped.txt")).Length
            + File.ReadAllLines(Path.Combine(folder, "PublicAPI.Unshipped.txt")).Length;

        Assert.InRange(lines, 1, 150);
    }

    [Fact]
    public void No_public_type_is_an_options_class_or_differs_from_another_by_a_plural()
    {
        var types = typeof(McpGuardApiKey).Assembly.GetExportedTypes().Select(t => t.Name).ToHashSet(StringComparer.Ordinal);

        Assert.DoesNotContain(types, name => name.EndsWith("Options", StringComparison.Ordinal) && name != nameof(McpGuardToolOptions));
        Assert.DoesNotContain(types, name => types.Contains(name + "s") || types.Contains(name + "Entry"));
    }
}
