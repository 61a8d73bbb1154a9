using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using StackExchange.Redis;

namespace McpGuard.Tests.ScaleOut.Redis;

/// <summary>
/// A real <c>redis-server</c> of the tests' own (never a system service): on 127.0.0.1 at a free port, in a temporary
/// folder, with persistence off (<c>--save "" --appendonly no</c>). It can be stopped and started again on the same port
/// (the failure tests), and is stopped by its process id when the tests are done. <c>redis-server</c> must be on PATH:
/// without it the tests fail (CI installs it), they are never skipped.
/// </summary>
public sealed class RedisServer : IAsyncLifetime
{
    private readonly string _folder = Directory.CreateTempSubdirectory("mcpguard-redis-").FullName;
    private Process? _process;
    private ConnectionMultiplexer? _admin;

    public int Port { get; } = FreePort();

    /// <summary>The StackExchange.Redis configuration string McpGuard:Redis:Configuration takes.</summary>
    public string Configuration => $"127.0.0.1:{Port}";

    public bool IsRunning => _process is { HasExited: false };

    public async Task InitializeAsync() => await StartAsync();

    /// <summary>Starts redis-server (again) on <see cref="Port"/> and waits until it answers PING.</summary>
    public async Task StartAsync()
    {
        if (IsRunning)
        {
            return;
        }

        var path = FindOnPath("redis-server") ?? throw new InvalidOperationException(
            "redis-server is not on PATH. The Redis tests run a redis-server of their own; install it (apt-get install redis-server, brew install redis) and run them again.");
        var start = new ProcessStartInfo(path)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = _folder,
        };
        foreach (var argument in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", _folder, "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes" })
        {
            start.ArgumentList.Add(argument);
        }

        _process = Process.Start(start) ?? throw new InvalidOperationException("redis-server did not start.");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        var deadline = Stopwatch.StartNew();
        while (!await AnswersPingAsync())
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"redis-server exited with code {_process.ExitCode} on port {Port}.");
            }

            if (deadline.Elapsed > TimeSpan.FromSeconds(10))
            {
                throw new TimeoutException($"redis-server did not answer PING on port {Port} within 10 s.");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>Stops redis-server by its process id and waits until it has exited (its data goes with it).</summary>
    public async Task StopAsync()
    {
        if (_process is null)
        {
            return;
        }

        if (!_process.HasExited)
        {
            _process.Kill();
        }

        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        _process.Dispose();
        _process = null;
    }

    /// <summary>A connection of the test's own (admin commands allowed), shared by the tests.</summary>
    public async Task<IDatabase> DatabaseAsync()
    {
        _admin ??= await ConnectionMultiplexer.ConnectAsync(new ConfigurationOptions { EndPoints = { { IPAddress.Loopback, Port } }, AllowAdmin = true, AbortOnConnectFail = false });
        return _admin.GetDatabase();
    }

    /// <summary>Redis's clock, as the rate-limit script reads it.</summary>
    public async Task<DateTimeOffset> TimeAsync()
    {
        var time = (RedisResult[])(await (await DatabaseAsync()).ExecuteAsync("TIME"))!;
        return DateTimeOffset.UnixEpoch.AddTicks(((long)time[0] * TimeSpan.TicksPerSecond) + ((long)time[1] * 10));
    }

    /// <summary>
    /// Waits (at most <paramref name="needed"/>) until Redis's clock has at least <paramref name="needed"/> left in the
    /// current minute, so that a test's burst stays within one fixed window.
    /// </summary>
    public async Task WaitForRoomInMinuteAsync(TimeSpan needed)
    {
        var now = await TimeAsync();
        var left = TimeSpan.FromMinutes(1) - TimeSpan.FromTicks(now.UtcTicks % TimeSpan.TicksPerMinute);
        if (left < needed)
        {
            await Task.Delay(left + TimeSpan.FromMilliseconds(20));
        }
    }

    public async Task DisposeAsync()
    {
        if (_admin is not null)
        {
            await _admin.DisposeAsync();
        }

        await StopAsync();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
            // A file still held open: the temp folder is the system's to clean.
        }
    }

    private async Task<bool> AnswersPingAsync()
    {
        try
        {
            using var client = new TcpClient();
            await client.ConnectAsync(IPAddress.Loopback, Port);
            var stream = client.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray());
            var buffer = new byte[16];
            var read = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(1));
            return System.Text.Encoding.ASCII.GetString(buffer, 0, read).StartsWith("+PONG", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is SocketException or IOException or TimeoutException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "")
            .Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(folder => Path.Combine(folder, name))
            .FirstOrDefault(File.Exists);
}

/// <summary>The Redis tests share one redis-server and run one at a time (the failure tests stop it).</summary>
[CollectionDefinition(Name)]
public sealed class RedisTests : ICollectionFixture<RedisServer>
{
    public const string Name = "Redis";
}
