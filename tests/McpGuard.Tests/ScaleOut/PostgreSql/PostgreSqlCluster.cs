using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace McpGuard.Tests.ScaleOut.PostgreSql;

/// <summary>
/// A throwaway PostgreSQL cluster for one test class: initdb in a temporary folder, pg_ctl start on a free loopback port
/// with trust authentication, pg_ctl stop -m fast on dispose. It runs as the <c>postgres</c> user when the tests run as
/// root (PostgreSQL refuses root). It can be stopped and started again on the same port. A missing PostgreSQL fails
/// the test with a message saying what to install: these tests never skip.
/// </summary>
public sealed class PostgreSqlCluster : IAsyncLifetime
{
    private static int _databases;
    private string? _bin;
    private string? _folder;

    public int Port { get; private set; }

    private string DataDirectory => Path.Combine(_folder!, "data");

    private static bool IsRoot => Environment.UserName == "root";

    public async Task InitializeAsync()
    {
        _bin = FindBin() ?? throw new InvalidOperationException(
            "PostgreSQL's initdb and pg_ctl were not found on PATH or in /usr/lib/postgresql/*/bin. Install PostgreSQL (for example 'apt-get install postgresql') to run the ScaleOut.PostgreSql tests.");
        _folder = Path.Combine(Path.GetTempPath(), $"mcpguard-pg-{Guid.NewGuid():N}");
        Directory.CreateDirectory(_folder);
        if (IsRoot)
        {
            await RunAsync("chown", ["-R", "postgres:postgres", _folder], asPostgres: false);
        }

        await RunAsync(Path.Combine(_bin, "initdb"), ["-D", DataDirectory, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"], asPostgres: true);
        Port = FreePort();
        await StartAsync();
    }

    public async Task DisposeAsync()
    {
        if (_folder is null)
        {
            return;
        }

        try
        {
            await StopAsync();
        }
        finally
        {
            try
            {
                Directory.Delete(_folder, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>Starts the cluster (again), on the same port.</summary>
    public Task StartAsync() => RunAsync(
        Path.Combine(_bin!, "pg_ctl"),
        ["-D", DataDirectory, "-l", Path.Combine(_folder!, "server.log"), "-w", "-t", "30", "-o",
            $"-p {Port} -k {_folder} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on -c synchronous_commit=on", "start"],
        asPostgres: true);

    /// <summary>Stops the cluster at once (pg_ctl stop -m fast): open connections are cut.</summary>
    public Task StopAsync() => RunAsync(Path.Combine(_bin!, "pg_ctl"), ["-D", DataDirectory, "-w", "-t", "30", "-m", "fast", "stop"], asPostgres: true, check: false);

    /// <summary>A connection string to the cluster's <paramref name="database"/>.</summary>
    public string ConnectionString(string database = "postgres") =>
        $"Host=127.0.0.1;Port={Port};Username=postgres;Database={database};Pooling=true;Maximum Pool Size=50";

    /// <summary>A new, empty database: each test gets its own.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = $"t{Environment.ProcessId}_{Interlocked.Increment(ref _databases)}";
        await using var connection = new NpgsqlConnection(ConnectionString() + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE {name};", connection);
        await command.ExecuteNonQueryAsync();
        return ConnectionString(name);
    }

    /// <summary>Runs a query on its own unpooled connection and returns the first column of every row.</summary>
    public static async Task<List<T>> QueryAsync<T>(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString + ";Pooling=false");
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await using var reader = await command.ExecuteReaderAsync();
        var values = new List<T>();
        while (await reader.ReadAsync())
        {
            values.Add(reader.GetFieldValue<T>(0));
        }

        return values;
    }

    private static string? FindBin()
    {
        foreach (var folder in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator))
        {
            if (folder.Length > 0 && File.Exists(Path.Combine(folder, "initdb")) && File.Exists(Path.Combine(folder, "pg_ctl")))
            {
                // Follow a link (/usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb) to the folder with postgres itself.
                var target = new FileInfo(Path.Combine(folder, "initdb")).ResolveLinkTarget(returnFinalTarget: true)?.FullName;
                return target is null ? folder : Path.GetDirectoryName(target);
            }
        }

        return Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(v => Path.Combine(v, "bin")).Where(b => File.Exists(Path.Combine(b, "initdb"))).OrderDescending().FirstOrDefault()
            : null;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task RunAsync(string file, string[] arguments, bool asPostgres, bool check = true)
    {
        var start = new ProcessStartInfo(asPostgres && IsRoot ? "runuser" : file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (asPostgres && IsRoot)
        {
            foreach (var argument in new[] { "-u", "postgres", "--", file })
            {
                start.ArgumentList.Add(argument);
            }
        }

        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        if (check && process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await output}{await error}");
        }
    }
}
