namespace McpGuard.Tests.Docs;

/// <summary>One command of a <c>```console</c> block and the output the page shows for it (lines between the prompt lines).</summary>
internal sealed record TranscriptCommand(string Command, int OutputStart, int OutputEnd)
{
    /// <summary>The lines of output as the page shows them.</summary>
    public string[] ExpectedOutput(IReadOnlyList<string> lines) => [.. lines.Skip(OutputStart).Take(OutputEnd - OutputStart)];
}

/// <summary>A <c>```console</c> block: its commands in order, each with its shown output.</summary>
internal sealed record ConsoleBlock(int Line, IReadOnlyList<TranscriptCommand> Commands);

/// <summary>A <c>```text</c> block of log records (<c>info: Category[id]</c> followed by the message), checked against what the commands logged.</summary>
internal sealed record LogBlock(int Line, int Start, int End);

/// <summary>
/// A <c>##</c> section of a page: the console and log blocks in it, in order. Each section runs on a fresh sample and
/// a fresh ledger, so its transcripts show what a reader sees who follows the page from the top of the section.
/// </summary>
internal sealed record TranscriptSection(string Title, IReadOnlyList<object> Blocks);

/// <summary>Reads the transcripts out of a markdown page, and writes regenerated outputs back.</summary>
internal static class MarkdownTranscripts
{
    private static readonly string[] LogLevels = ["trce: ", "dbug: ", "info: ", "warn: ", "fail: ", "crit: "];

    public static List<TranscriptSection> Parse(IReadOnlyList<string> lines)
    {
        var sections = new List<TranscriptSection>();
        var title = "(top)";
        var blocks = new List<object>();
        for (var i = 0; i < lines.Count; i++)
        {
            var line = lines[i];
            if (line.StartsWith("## ", StringComparison.Ordinal))
            {
                Flush();
                title = line[3..];
                continue;
            }

            if (line == "```console")
            {
                var start = i + 1;
                var end = start;
                while (lines[end] != "```")
                {
                    end++;
                }

                var commands = new List<TranscriptCommand>();
                for (var j = start; j < end; j++)
                {
                    if (!lines[j].StartsWith("$ ", StringComparison.Ordinal))
                    {
                        continue;
                    }

                    var outputEnd = j + 1;
                    while (outputEnd < end && !lines[outputEnd].StartsWith("$ ", StringComparison.Ordinal))
                    {
                        outputEnd++;
                    }

                    commands.Add(new TranscriptCommand(lines[j][2..], j + 1, outputEnd));
                }

                if (commands.Count > 0)
                {
                    blocks.Add(new ConsoleBlock(i + 1, commands));
                }

                i = end;
                continue;
            }

            if (line == "```text" && i + 1 < lines.Count && LogLevels.Any(level => lines[i + 1].StartsWith(level, StringComparison.Ordinal)))
            {
                var end = i + 1;
                while (lines[end] != "```")
                {
                    end++;
                }

                blocks.Add(new LogBlock(i + 1, i + 1, end));
                i = end;
            }
        }

        Flush();
        return sections;

        void Flush()
        {
            if (blocks.Count > 0)
            {
                sections.Add(new TranscriptSection(title, blocks));
            }

            blocks = [];
        }
    }

    /// <summary>The page with the outputs of some commands replaced, from the last to the first so line numbers stay valid.</summary>
    public static List<string> Replace(IReadOnlyList<string> lines, IEnumerable<(TranscriptCommand Command, string[] Output)> outputs)
    {
        var result = lines.ToList();
        foreach (var (command, output) in outputs.OrderByDescending(o => o.Command.OutputStart))
        {
            result.RemoveRange(command.OutputStart, command.OutputEnd - command.OutputStart);
            result.InsertRange(command.OutputStart, output);
        }

        return result;
    }
}
