using System.Diagnostics;
using System.Reflection;
using System.Text;
using McpGuard.Tests.Docs;

namespace McpGuard.Tests.Conformance;

/// <summary>
/// The conformance server (tests/McpGuard.Conformance) run as eng/conformance.sh runs it: its build output started with
/// <c>dotnet McpGuard.Conformance.dll --Conformance:Guard=&lt;mode&gt;</c> as a process of its own, on two free loopback
/// ports, with the endpoints read from its <c>--Conformance:ReadyFile</c>. Further arguments (<c>--McpGuard:…</c>)
/// override the mode's configuration file. Stopped by its process id on dispose, and when it fails to start.
/// </summary>
internal sealed class ConformanceServer : IAsyncDisposable
{
    private static readonly TimeSpan StartLimit = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan StopLimit = TimeSpan.FromSeconds(30);

    private readonly Process _process;
    private readonly StringBuilder _output;
    private readonly string _readyFile;

    private ConformanceServer(Process process, StringBuilder output, string readyFile, Uri stateful, Uri stateless)
    {
        _process = process;
        _output = output;
        _readyFile = readyFile;
        StatefulEndpoint = stateful;
        StatelessEndpoint = stateless;
    }

    /// <summary>The stateful endpoint (sessions, 2025-11-25 clients).</summary>
    public Uri StatefulEndpoint { get; }

    /// <summary>The stateless endpoint (every request on its own, 2026-07-28 clients).</summary>
    public Uri StatelessEndpoint { get; }

    public int ProcessId => _process.Id;

    /// <summary>What the server wrote to standard output and standard error so far.</summary>
    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    /// <summary>
    /// The build output this test build expects: <c>tests/McpGuard.Conformance/bin/&lt;Configuration&gt;/net10.0/</c>,
    /// built first by the test project's reference to the conformance project.
    /// </summary>
    public static string ServerDll =>
        Path.Combine(
            DocsTranscriptTests.RepositoryRoot(),
            typeof(ConformanceServer).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "ConformanceServerDll").Value!);

    public static async Task<ConformanceServer> StartAsync(string mode, IEnumerable<string> arguments)
    {
        var dll = ServerDll;
        Assert.True(File.Exists(dll), $"{dll} is missing: build the test project (it builds tests/McpGuard.Conformance first).");
        var readyFile = Path.Combine(Path.GetTempPath(), $"mcpguard-conformance-{Guid.NewGuid():N}.endpoints");
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(dll)!,
        };
        start.ArgumentList.Add(dll);
        start.ArgumentList.Add($"--Conformance:Guard={mode}");
        start.ArgumentList.Add($"--Conformance:ReadyFile={readyFile}");
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        var output = new StringBuilder();
        var process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        Assert.True(process.Start(), $"could not start {start.FileName} {dll}");
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        ConformanceServer? server = null;
        try
        {
            var endpoints = await WaitForEndpointsAsync(process, readyFile, Snapshot);
            server = new ConformanceServer(process, output, readyFile, new Uri(endpoints["stateful"]), new Uri(endpoints["stateless"]));
            return server;
        }
        finally
        {
            if (server is null)
            {
                await StopAsync(process);
                process.Dispose();
                File.Delete(readyFile);
            }
        }

        void Append(string? line)
        {
            if (line is not null)
            {
                lock (output)
                {
                    output.AppendLine(line);
                }
            }
        }

        string Snapshot()
        {
            lock (output)
            {
                return output.ToString();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(_process);
        _process.Dispose();
        File.Delete(_readyFile);
    }

    /// <summary>The file's <c>stateful=…</c> and <c>stateless=…</c> lines, once the server wrote it (it renames it into place whole).</summary>
    private static async Task<Dictionary<string, string>> WaitForEndpointsAsync(Process process, string readyFile, Func<string> output)
    {
        var clock = Stopwatch.StartNew();
        while (!File.Exists(readyFile))
        {
            if (process.HasExited)
            {
                throw new Xunit.Sdk.XunitException($"The conformance server exited with {process.ExitCode} before listening:\n{output()}");
            }

            if (clock.Elapsed > StartLimit)
            {
                throw new Xunit.Sdk.XunitException($"The conformance server did not listen within {StartLimit.TotalSeconds} s:\n{output()}");
            }

            await Task.Delay(100);
        }

        return (await File.ReadAllLinesAsync(readyFile))
            .Where(line => line.Length > 0)
            .Select(line => line.Split('=', 2))
            .ToDictionary(pair => pair[0], pair => pair[1], StringComparer.Ordinal);
    }

    /// <summary>Kills the process by its id (SIGKILL: the in-memory ledger has nothing to flush) and waits, bounded, for it to exit.</summary>
    private static async Task StopAsync(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }

        using var limit = new CancellationTokenSource(StopLimit);
        try
        {
            await process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException)
        {
            throw new Xunit.Sdk.XunitException($"The conformance server (process {process.Id}) did not exit within {StopLimit.TotalSeconds} s of being killed.");
        }
    }
}
