using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace McpGuard.Tests.Docs;

/// <summary>
/// Every transcript a page shows is what the sample really answers. Each <c>##</c> section of README.md and of the
/// pages in docs/ runs on a fresh sample with a fresh ledger: its <c>```console</c> blocks run in order with bash and
/// curl (curl's connections go to the test's port; URLs and <c>Host</c> stay <c>127.0.0.1:5080</c>), a
/// <c>dotnet run --project samples/McpGuard.Sample -- --Key=Value…</c> line restarts the sample with that
/// configuration (or shows the start-up failure it causes), the same line without settings restarts it as it ships,
/// and a <c>```text</c> block of log records must appear, in order, in what the sample logged. The sample's clock
/// stands still (<see cref="DocsClock"/>); what still differs from run to run (dates, request ids, generated keys and
/// tokens, the day window's seconds) is compared as a placeholder.
/// Each section also gets a scratch folder that stands in for the repository: the commands run there, and the sample's
/// build output folder in it (<c>samples/McpGuard.Sample/bin/Debug/net10.0/</c>) holds the sample's own appsettings.json,
/// which the sample reads and watches, so a transcript can edit the file and show the reload it causes.
/// </summary>
/// <remarks>
/// <c>MCPGUARD_UPDATE_DOCS=1 dotnet test --filter DocsTranscriptTests</c> writes the real outputs into the pages
/// instead of comparing: the script that produces every output the docs show.
/// </remarks>
[Collection(DocsRunAlone.Name)]
public sealed partial class DocsTranscriptTests(ITestOutputHelper output)
{
    private const string ServerStart = "dotnet run --project samples/McpGuard.Sample -- --";
    private const string DefaultServerStart = "dotnet run --project samples/McpGuard.Sample";
    private const string DocsPort = "127.0.0.1:5080";
    private const string SampleOutputFolder = "samples/McpGuard.Sample/bin/Debug/net10.0";
    private static readonly bool Update = Environment.GetEnvironmentVariable("MCPGUARD_UPDATE_DOCS") == "1";
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(60);

    /// <summary>How long a log block waits for a record: some are written after the response (a refund) or by a file watcher (a reload).</summary>
    private static readonly TimeSpan LogWait = TimeSpan.FromSeconds(10);

    public static TheoryData<string> Pages()
    {
        var root = RepositoryRoot();
        var pages = new TheoryData<string> { "README.md" };
        var docs = Path.Combine(root, "docs");
        foreach (var page in Directory.Exists(docs) ? Directory.GetFiles(docs, "*.md").Order(StringComparer.Ordinal).ToArray() : [])
        {
            pages.Add(Path.GetRelativePath(root, page));
        }

        return pages;
    }

    [Theory]
    [MemberData(nameof(Pages))]
    public async Task Every_transcript_shows_what_the_sample_answers(string page)
    {
        var path = Path.Combine(RepositoryRoot(), page);
        var lines = File.ReadAllLines(path);
        var mismatches = new List<string>();
        var regenerated = new List<(TranscriptCommand, string[])>();
        var commands = 0;

        foreach (var section in MarkdownTranscripts.Parse(lines))
        {
            await using var run = new SectionRun(output);
            foreach (var block in section.Blocks)
            {
                if (block is ConsoleBlock console)
                {
                    commands += console.Commands.Count;
                    foreach (var (command, actual) in await run.RunAsync(console))
                    {
                        var expected = command.ExpectedOutput(lines);
                        if (Normalise(expected) != Normalise(actual))
                        {
                            mismatches.Add($"{page}:{command.OutputStart} ({section.Title}) $ {Shorten(command.Command)}\n--- page\n{string.Join('\n', expected)}\n--- sample\n{string.Join('\n', actual)}");
                            regenerated.Add((command, actual));
                        }
                    }
                }
                else if (block is LogBlock logs && await run.MissingLogRecordAsync(lines, logs) is { } missing)
                {
                    mismatches.Add($"{page}:{logs.Line} ({section.Title}) log record not logged by the sample:\n{missing}");
                }
            }
        }

        output.WriteLine($"{page}: {commands} commands, {mismatches.Count} differ.");
        if (Update && regenerated.Count > 0)
        {
            File.WriteAllLines(path, MarkdownTranscripts.Replace(lines, regenerated));
            output.WriteLine($"Rewrote {regenerated.Count} outputs in {page}.");
            return;
        }

        Assert.True(mismatches.Count == 0, $"{mismatches.Count} transcript(s) in {page} differ from the sample (MCPGUARD_UPDATE_DOCS=1 rewrites them):\n\n" + string.Join("\n\n", mismatches));
    }

    /// <summary>What a transcript's output is compared as: what differs from run to run becomes a placeholder.</summary>
    internal static string Normalise(IEnumerable<string> output)
    {
        var text = string.Join('\n', output.Select(l => l.TrimEnd())).TrimEnd();
        text = DateHeader().Replace(text, "Date: <date>");
        text = RequestId().Replace(text, "req_<id>");
        text = Timestamp().Replace(text, "<time>");
        text = TraceId().Replace(text, "\"traceId\":\"<trace>\"");
        text = Jwt().Replace(text, "<jwt>");
        text = GeneratedKey().Replace(text, "mcpg_<key>");
        text = GeneratedHash().Replace(text, "hash: <sha256>");
        text = DayWindow().Replace(text, "${window}<s>");
        return text;
    }

    [GeneratedRegex(@"^Date: .*$", RegexOptions.Multiline)]
    private static partial Regex DateHeader();

    [GeneratedRegex(@"req_[A-Za-z0-9_-]{22}")]
    private static partial Regex RequestId();

    [GeneratedRegex(@"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")]
    private static partial Regex Timestamp();

    [GeneratedRegex("\"traceId\":\"[^\"]*\"")]
    private static partial Regex TraceId();

    [GeneratedRegex(@"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")]
    private static partial Regex Jwt();

    [GeneratedRegex(@"mcpg_(?!demo_)[A-Za-z0-9_-]{30,}")]
    private static partial Regex GeneratedKey();

    [GeneratedRegex(@"hash: [0-9a-f]{64}")]
    private static partial Regex GeneratedHash();

    [GeneratedRegex(@"(?<window>""[^""]*-1d"";r=\d+;t=)\d+")]
    private static partial Regex DayWindow();

    /// <summary>Where a debug build's stack frame points in the source (" in /path/File.cs:line 52"): not on a reader's console.</summary>
    [GeneratedRegex(@" in .+:line \d+$")]
    private static partial Regex StackFrameSource();

    private static string Shorten(string command) => command.Length <= 160 ? command : command[..160] + "…";

    internal static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "McpGuard.sln")))
            {
                return directory.FullName;
            }
        }

        throw new InvalidOperationException("McpGuard.sln not found above the test output folder.");
    }

    /// <summary>One section's sample (restarted by a server-start line) and everything it logged.</summary>
    private sealed class SectionRun(ITestOutputHelper output) : IAsyncDisposable
    {
        private readonly DirectoryInfo _scratch = CreateScratch();
        private GuardedHost? _host;
        private bool _startFailed;
        private int _logsSeen;

        /// <summary>The section's stand-in for the repository, with a copy of the sample's appsettings.json in its build output folder.</summary>
        private static DirectoryInfo CreateScratch()
        {
            var scratch = Directory.CreateTempSubdirectory("mcpguard-docs-");
            var sample = Directory.CreateDirectory(Path.Combine(scratch.FullName, SampleOutputFolder));
            File.Copy(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), Path.Combine(sample.FullName, "appsettings.json"));
            return scratch;
        }

        public async Task<List<(TranscriptCommand Command, string[] Output)>> RunAsync(ConsoleBlock block)
        {
            var results = new List<(TranscriptCommand, string[])>();
            var shell = new List<TranscriptCommand>();
            foreach (var command in block.Commands)
            {
                // The sample as it ships (with no arguments) or with settings: both restart it, on a fresh ledger.
                if (command.Command == DefaultServerStart || command.Command.StartsWith(ServerStart, StringComparison.Ordinal))
                {
                    results.AddRange(await RunShellAsync(shell));
                    shell.Clear();
                    results.Add((command, await RestartAsync(command.Command[DefaultServerStart.Length..])));
                }
                else
                {
                    shell.Add(command);
                }
            }

            results.AddRange(await RunShellAsync(shell));
            return results;
        }

        /// <summary>Restarts the sample with the line's settings; the output is the start-up failure, if any, as the host logs it.</summary>
        private async Task<string[]> RestartAsync(string arguments)
        {
            await StopAsync();
            var settings = new Dictionary<string, string?>(StringComparer.Ordinal);
            foreach (var argument in (await SplitArgumentsAsync(arguments)).SkipWhile(a => a == "--"))
            {
                var equals = argument.IndexOf('=', StringComparison.Ordinal);
                settings[argument[2..equals]] = argument[(equals + 1)..];
            }

            var startLogs = new LogSink();
            try
            {
                _startFailed = true;
                _host = await StartAsync(settings, startLogs);
                _startFailed = false;
                return [];
            }
            catch (Exception) when (StartFailure(startLogs) is { } failure)
            {
                return failure;
            }
        }

        /// <summary>
        /// The host's "Hosting failed to start" record as the console shows it: the exception's type, message and first
        /// frame, with "…" for what the console shows around it (records the host logged before, the rest of the stack).
        /// Null when the host logged no such record: then the exception is the test's own failure.
        /// </summary>
        private static string[]? StartFailure(LogSink logs)
        {
            var entries = logs.Entries.ToList();
            var index = entries.FindIndex(e => e is { Category: "Microsoft.Extensions.Hosting.Internal.Host", EventId.Id: 11, Exception: not null });
            if (index < 0)
            {
                return null;
            }

            var exception = entries[index].Exception!;
            var frame = StackFrameSource().Replace((exception.StackTrace ?? string.Empty).Split('\n')[0].Trim(), string.Empty);
            return
            [
                .. index > 0 ? ["…"] : Array.Empty<string>(),
                "fail: Microsoft.Extensions.Hosting.Internal.Host[11]",
                "      Hosting failed to start",
                $"      {exception.GetType().FullName}: {exception.Message}",
                $"         {frame}",
                "…",
            ];
        }

        private async Task<List<(TranscriptCommand, string[])>> RunShellAsync(List<TranscriptCommand> commands)
        {
            if (commands.Count == 0)
            {
                return [];
            }

            // A reader whose sample failed to start has no sample to talk to: say so rather than start one quietly.
            if (_host is null && _startFailed)
            {
                throw new InvalidOperationException($"'{commands[0].Command}' runs after the sample failed to start; start it again first.");
            }

            _host ??= await StartAsync(new Dictionary<string, string?>());
            var port = _host.BaseAddress.Port;
            var script = new StringBuilder();
            script.AppendLine("curl() { command curl --no-progress-meter --connect-to \"127.0.0.1:5080:127.0.0.1:$MCPGUARD_PORT\" --connect-to \"localhost:5080:127.0.0.1:$MCPGUARD_PORT\" \"$@\"; }");
            script.AppendLine("dotnet() { local args=(); local after=0; for a in \"$@\"; do if [ $after = 1 ]; then args+=(\"$a\"); elif [ \"$a\" = \"--\" ]; then after=1; fi; done; command dotnet \"$MCPGUARD_SAMPLE\" \"${args[@]}\"; }");
            for (var i = 0; i < commands.Count; i++)
            {
                script.AppendLine(System.Globalization.CultureInfo.InvariantCulture, $"printf '\\n<<<mcpguard-transcript {i}>>>\\n'");
                script.AppendLine(System.Globalization.CultureInfo.InvariantCulture, $"{{ {commands[i].Command}\n}} 2>&1");
            }

            var start = new ProcessStartInfo("bash", ["-c", script.ToString()])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = _scratch.FullName,
            };
            start.Environment["MCPGUARD_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            start.Environment["MCPGUARD_SAMPLE"] = Path.Combine(AppContext.BaseDirectory, "McpGuard.Sample.dll");
            using var process = Process.Start(start)!;
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(CommandTimeout);
            await process.WaitForExitAsync(timeout.Token);
            var text = (await stdout).Replace("\r\n", "\n", StringComparison.Ordinal).Replace(":" + port, ":5080", StringComparison.Ordinal);
            output.WriteLine(await stderr);

            var results = new List<(TranscriptCommand, string[])>();
            for (var i = 0; i < commands.Count; i++)
            {
                var marker = $"\n<<<mcpguard-transcript {i}>>>\n";
                var from = text.IndexOf(marker, StringComparison.Ordinal) + marker.Length;
                var next = text.IndexOf($"\n<<<mcpguard-transcript {i + 1}>>>\n", StringComparison.Ordinal);
                var body = (next < 0 ? text[from..] : text[from..next]).TrimEnd('\n');
                results.Add((commands[i], body.Length == 0 ? [] : body.Split('\n')));
            }

            return results;
        }

        /// <summary>
        /// The first record of the block the sample did not log (after the records already matched), or null. Each record may
        /// take up to <see cref="LogWait"/> to appear.
        /// </summary>
        public async Task<string?> MissingLogRecordAsync(IReadOnlyList<string> lines, LogBlock block)
        {
            if (_host is null)
            {
                return "(no sample ran in this section)";
            }

            for (var i = block.Start; i < block.End; i++)
            {
                var line = lines[i];
                if (line.Length < 6 || line[4] != ':' || line[5] != ' ')
                {
                    continue;
                }

                var record = Normalise([line, i + 1 < block.End ? lines[i + 1] : string.Empty]);
                var waited = Stopwatch.StartNew();
                int found;
                while ((found = _host.Logs.Entries.Select(Format).ToList().FindIndex(_logsSeen, l => Normalise([.. l.Split('\n').Take(2)]) == record)) < 0)
                {
                    if (waited.Elapsed > LogWait)
                    {
                        return record;
                    }

                    await Task.Delay(50);
                }

                _logsSeen = found + 1;
            }

            return null;
        }

        private static string Format(LogEntry entry)
        {
            var level = entry.Level switch
            {
                LogLevel.Trace => "trce",
                LogLevel.Debug => "dbug",
                LogLevel.Information => "info",
                LogLevel.Warning => "warn",
                LogLevel.Error => "fail",
                _ => "crit",
            };
            return $"{level}: {entry.Category}[{entry.EventId.Id}]\n      {entry.Message}";
        }

        private Task<GuardedHost> StartAsync(Dictionary<string, string?> settings, LogSink? startLogs = null) =>
            GuardedHost.StartSampleAsync(settings, builder => builder
                .UseContentRoot(Path.Combine(_scratch.FullName, SampleOutputFolder))
                .ConfigureLogging(logging =>
                {
                    if (startLogs is not null)
                    {
                        logging.AddProvider(startLogs);
                    }
                })
                .ConfigureServices(services => services.AddSingleton<TimeProvider>(new DocsClock())));

        private static async Task<string[]> SplitArgumentsAsync(string arguments)
        {
            var start = new ProcessStartInfo("bash", ["-c", $"printf '%s\\0' {arguments}"]) { RedirectStandardOutput = true };
            using var process = Process.Start(start)!;
            var text = await process.StandardOutput.ReadToEndAsync();
            await process.WaitForExitAsync();
            return text.Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }

        private async Task StopAsync()
        {
            if (_host is not null)
            {
                await _host.DisposeAsync();
                _host = null;
                _logsSeen = 0;
            }
        }

        public async ValueTask DisposeAsync()
        {
            await StopAsync();
            _scratch.Delete(recursive: true);
        }
    }
}

/// <summary>
/// The transcripts run after every other test, alone: the sample's OpenTelemetry exporter matches meter <c>McpGuard</c> by
/// name, as OpenTelemetry does, so a <c>/metrics</c> transcript would also count the requests of other apps running in
/// this process at the same time.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DocsRunAlone
{
    public const string Name = "Docs transcripts";
}
