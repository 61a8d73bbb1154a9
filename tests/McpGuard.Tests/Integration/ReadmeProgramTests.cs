namespace McpGuard.Tests.Integration;

/// <summary>
/// README's "Add it to your server" is the sample's Program.cs and appsettings.json, character for character, so it
/// runs as written.
/// </summary>
public sealed class ReadmeProgramTests
{
    private const string StartMarker = "<!-- program-cs:start -->\n```csharp\n";
    private const string EndMarker = "```\n<!-- program-cs:end -->";
    private const string SettingsStartMarker = "<!-- appsettings-json:start -->\n```json\n";
    private const string SettingsEndMarker = "```\n<!-- appsettings-json:end -->";

    [Fact]
    public void The_readme_is_a_front_page_of_at_most_250_lines()
    {
        var lines = File.ReadAllLines(Path.Combine(RepositoryRoot(), "README.md")).Length;

        Assert.InRange(lines, 1, 250);
    }

    [Fact]
    public void The_readme_shows_the_sample_program_exactly()
    {
        var root = RepositoryRoot();
        var readme = Normalize(File.ReadAllText(Path.Combine(root, "README.md")));
        var program = Normalize(File.ReadAllText(Path.Combine(root, "samples", "McpGuard.Sample", "Program.cs")));

        var section = readme.IndexOf("## Add it to your server\n", StringComparison.Ordinal);
        Assert.True(section >= 0, "README.md has no \"## Add it to your server\" section.");
        var start = readme.IndexOf(StartMarker, section, StringComparison.Ordinal);
        Assert.True(start >= 0, $"README.md's \"Add it to your server\" has no {StartMarker.Trim()} block.");
        var end = readme.IndexOf(EndMarker, start, StringComparison.Ordinal);
        Assert.True(end >= 0, $"README.md's Program.cs block has no {EndMarker.Trim()}.");
        Assert.True(readme.IndexOf("\n## ", section + 1, StringComparison.Ordinal) > end, "The Program.cs block is not in \"Add it to your server\".");

        Assert.Equal(program, readme[(start + StartMarker.Length)..end]);
        Assert.Contains(".WithHttpTransport()", program, StringComparison.Ordinal);
        Assert.Contains("app.MapMcp(\"/mcp\");", program, StringComparison.Ordinal);
    }

    [Fact]
    public void The_readme_shows_the_sample_appsettings_exactly()
    {
        var root = RepositoryRoot();
        var readme = Normalize(File.ReadAllText(Path.Combine(root, "README.md")));
        var settings = Normalize(File.ReadAllText(Path.Combine(root, "samples", "McpGuard.Sample", "appsettings.json")));

        var section = readme.IndexOf("## Add it to your server\n", StringComparison.Ordinal);
        Assert.True(section >= 0, "README.md has no \"## Add it to your server\" section.");
        var start = readme.IndexOf(SettingsStartMarker, section, StringComparison.Ordinal);
        Assert.True(start >= 0, $"README.md's \"Add it to your server\" has no {SettingsStartMarker.Trim()} block.");
        var end = readme.IndexOf(SettingsEndMarker, start, StringComparison.Ordinal);
        Assert.True(end >= 0, $"README.md's appsettings.json block has no {SettingsEndMarker.Trim()}.");
        Assert.True(readme.IndexOf("\n## ", section + 1, StringComparison.Ordinal) > end, "The appsettings.json block is not in \"Add it to your server\".");

        Assert.Equal(settings.TrimEnd('\n') + "\n", readme[(start + SettingsStartMarker.Length)..end]);
        Assert.Contains("\"Path\": \"/mcp\"", settings, StringComparison.Ordinal);
    }

    private static string Normalize(string text) => text.Replace("\r\n", "\n", StringComparison.Ordinal);

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "McpGuard.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException($"No McpGuard.sln above {AppContext.BaseDirectory}.");
    }
}
