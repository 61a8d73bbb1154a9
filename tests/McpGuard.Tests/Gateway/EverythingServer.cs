using System.Diagnostics;
using System.Text.Json;
using McpGuard.Tests.Proxy;

namespace McpGuard.Tests.Gateway;

/// <summary>
/// <c>@modelcontextprotocol/server-everything</c> (the reference MCP server, in Node.js) in <c>streamableHttp</c> mode, with
/// stateful sessions, on a free loopback port: a real upstream in another language. Started with
/// <c>tests/interop-ts/upstream-log.mjs</c> preloaded, which writes what the server received to a request log.
/// Needs <c>node</c> and <c>npm ci --prefix tests/interop-ts</c> (CI runs it).
/// </summary>
internal sealed class EverythingServer : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _log;

    private EverythingServer(Process process, int port, string log)
    {
        _process = process;
        _log = log;
        Url = new Uri($"http://127.0.0.1:{port}/mcp");
    }

    public Uri Url { get; }

    public static string InteropFolder => Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "interop-ts"));

    public static async Task<EverythingServer> StartAsync()
    {
        var folder = InteropFolder;
        var entry = Path.Combine(folder, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js");
        if (!File.Exists(entry))
        {
            throw new Xunit.Sdk.XunitException($"server-everything is not installed ({entry}): run `npm ci --prefix tests/interop-ts` (CI does).");
        }

        var port = ProxyTests.FreePort();
        var log = Path.Combine(Path.GetTempPath(), $"mcpguard-upstream-{Guid.NewGuid():N}.jsonl");
        var start = new ProcessStartInfo("node")
        {
            WorkingDirectory = folder,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("--import");
        start.ArgumentList.Add("./upstream-log.mjs");
        start.ArgumentList.Add(entry);
        start.ArgumentList.Add("streamableHttp");
        start.Environment["PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["MCPGUARD_UPSTREAM_LOG"] = log;
        var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start node.");
        var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var output = new System.Collections.Concurrent.ConcurrentQueue<string>();
        void Read(string? line)
        {
            if (line is null)
            {
                return;
            }

            output.Enqueue(line);
            if (line.Contains("listening on port", StringComparison.Ordinal))
            {
                listening.TrySetResult();
            }
        }

        process.OutputDataReceived += (_, e) => Read(e.Data);
        process.ErrorDataReceived += (_, e) => Read(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new EverythingServer(process, port, log);
        if (await Task.WhenAny(listening.Task, Task.Delay(TimeSpan.FromSeconds(30))) != listening.Task)
        {
            await server.DisposeAsync();
            throw new Xunit.Sdk.XunitException("server-everything did not start within 30 s:\n" + string.Join('\n', output));
        }

        return server;
    }

    /// <summary>Every request the upstream received so far, as its request log recorded them.</summary>
    public IReadOnlyList<LoggedRequest> Requests()
    {
        if (!File.Exists(_log))
        {
            return [];
        }

        return [.. File.ReadAllLines(_log).Where(l => l.Length > 0).Select(line =>
        {
            using var entry = JsonDocument.Parse(line);
            var root = entry.RootElement;
            var headers = root.GetProperty("headers").EnumerateObject().ToDictionary(h => h.Name, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
            return new LoggedRequest(root.GetProperty("method").GetString()!, root.GetProperty("url").GetString()!, headers, root.GetProperty("status").GetInt32());
        })];
    }

    /// <summary>Kills the server at once, as a crash would.</summary>
    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit(10_000);
        }
    }

    public ValueTask DisposeAsync()
    {
        Kill();
        _process.Dispose();
        try
        {
            File.Delete(_log);
        }
        catch (IOException)
        {
        }

        return ValueTask.CompletedTask;
    }
}

internal sealed record LoggedRequest(string Method, string Url, IReadOnlyDictionary<string, string> Headers, int Status)
{
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;
}
