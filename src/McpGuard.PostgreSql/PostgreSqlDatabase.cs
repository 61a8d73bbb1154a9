using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace McpGuard.PostgreSql;

/// <summary>
/// The one <see cref="NpgsqlDataSource"/> McpGuard's PostgreSQL stores share, built from <c>McpGuard:PostgreSql</c> with
/// <c>McpGuard:StoreTimeout</c> as its connect, command and statement timeout, and the schema's migration, run once per
/// process (again after a failure) under an advisory lock. Every store call awaits <see cref="EnsureMigratedAsync"/>,
/// so nothing depends on the order hosted services start in.
/// </summary>
internal sealed partial class PostgreSqlDatabase : IAsyncDisposable, IHealthCheck
{
    private readonly ILogger _logger;
    private readonly Lock _lock = new();
    private Task? _migration;
    private volatile bool _migrated;
    private long _failedAt;

    public PostgreSqlDatabase(McpGuardStateProvider states, ILoggerFactory loggers)
        : this(states.Current.Options.PostgreSql.ConnectionString!, states.Current.Options.PostgreSql.Schema, states.Current.Options.StoreTimeout, loggers.CreateLogger("McpGuard.PostgreSql"))
    {
    }

    public PostgreSqlDatabase(string connectionString, string schema, TimeSpan timeout, ILogger logger)
    {
        _logger = logger;
        Timeout = timeout;
        SchemaName = schema;
        Schema = Quote(SchemaName);
        Channel = Quote(SchemaName + "_changes");
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        var settings = builder.ConnectionStringBuilder;
        var seconds = (int)Math.Ceiling(Timeout.TotalSeconds);
        settings.Timeout = Math.Max(1, seconds);
        settings.CommandTimeout = Math.Max(1, seconds);
        settings.Enlist = false;
        if (settings.MaxAutoPrepare == 0)
        {
            settings.MaxAutoPrepare = 32;
        }

        // The server gives up on a statement (and rolls it back) within the store timeout too, so a charge whose caller
        // stopped waiting cannot commit much later.
        settings.Options = $"{settings.Options} -c statement_timeout={(long)Timeout.TotalMilliseconds}".Trim();
        DataSource = builder.Build();

        // The listening connection is one of its own, named so an operator can tell it apart in pg_stat_activity.
        var listen = new NpgsqlDataSourceBuilder(settings.ConnectionString);
        listen.ConnectionStringBuilder.ApplicationName = ListenerName;
        listen.ConnectionStringBuilder.Pooling = false;
        listen.ConnectionStringBuilder.KeepAlive = Math.Max(1, seconds);
        ListenDataSource = listen.Build();
    }

    /// <summary>The <c>application_name</c> of the connection that listens for key and status changes.</summary>
    public const string ListenerName = "McpGuard listener";

    /// <summary>Where the listening connection comes from (unpooled).</summary>
    public NpgsqlDataSource ListenDataSource { get; }

    public NpgsqlDataSource DataSource { get; }

    /// <summary><c>McpGuard:StoreTimeout</c>.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>The schema, unquoted.</summary>
    public string SchemaName { get; }

    /// <summary>The schema, quoted for SQL.</summary>
    public string Schema { get; }

    /// <summary>The notification channel of key and status changes, quoted for <c>LISTEN</c>.</summary>
    public string Channel { get; }

    /// <summary>Completes once the schema is at the current version; a failed attempt is tried again by the next caller.</summary>
    public Task EnsureMigratedAsync(CancellationToken cancellationToken)
    {
        if (_migrated)
        {
            return Task.CompletedTask;
        }

        Task migration;
        lock (_lock)
        {
            // A failed attempt is answered for a second before the next one, so a PostgreSQL that is down is not asked
            // (and the failure not logged) once per request.
            if (_migration is null || ((_migration.IsFaulted || _migration.IsCanceled) && Environment.TickCount64 - _failedAt >= 1000))
            {
                _migration = MigrateAsync();
            }

            migration = _migration;
        }

        return migration.WaitAsync(cancellationToken);
    }

    /// <summary>The SQL of one of McpGuard's statements, with the schema in place.</summary>
    public string Sql(string text) => text.Replace("{s}", Schema, StringComparison.Ordinal)
        .Replace("{channelText}", "'" + SchemaName + "_changes'", StringComparison.Ordinal);

    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        await using var command = DataSource.CreateCommand("SELECT 1;");
        await command.ExecuteScalarAsync(cancellationToken);
        return HealthCheckResult.Healthy("PostgreSQL");
    }

    /// <summary>Drops pooled connections after a failure that may have broken them (a restarted server, say).</summary>
    public void ForgetConnections(Exception exception)
    {
        if (IsBroken(exception))
        {
            DataSource.Clear();
        }
    }

    /// <summary>
    /// Whether a failure says connections were broken (the socket failed, the server shut down or refused to connect),
    /// not merely that one statement was cancelled or timed out: only then are the pooled connections worth dropping.
    /// </summary>
    internal static bool IsBroken(Exception exception) => exception switch
    {
        OperationCanceledException or TimeoutException => false,
        PostgresException postgres => postgres.SqlState is "57P01" or "57P02" or "57P03" || postgres.SqlState.StartsWith("08", StringComparison.Ordinal),
        NpgsqlException { InnerException: TimeoutException or OperationCanceledException } => false,
        NpgsqlException { InnerException: IOException or System.Net.Sockets.SocketException } => true,
        NpgsqlException npgsql => npgsql.IsTransient,
        IOException or System.Net.Sockets.SocketException => true,
        _ => false,
    };

    public async ValueTask DisposeAsync()
    {
        await ListenDataSource.DisposeAsync();
        await DataSource.DisposeAsync();
    }

    private async Task MigrateAsync()
    {
        using var timeout = new CancellationTokenSource(Timeout * 10);
        var cancellationToken = timeout.Token;
        try
        {
            await using var connection = await DataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await ExecuteAsync(connection, $"SET LOCAL statement_timeout = {(long)(Timeout * 10).TotalMilliseconds};", cancellationToken);
            await ExecuteAsync(connection, $"SELECT pg_advisory_xact_lock({PostgreSqlSchema.AdvisoryLockClass}, hashtext('{SchemaName}'));", cancellationToken);
            await ExecuteAsync(connection, $"""
                CREATE SCHEMA IF NOT EXISTS {Schema};
                CREATE TABLE IF NOT EXISTS {Schema}.schema_version (
                    version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(), applied_by text NOT NULL);
                """, cancellationToken);
            await using var read = new NpgsqlCommand($"SELECT coalesce(max(version), 0) FROM {Schema}.schema_version;", connection);
            var current = (int)(await read.ExecuteScalarAsync(cancellationToken))!;
            for (var version = current + 1; version <= PostgreSqlSchema.Migrations.Length; version++)
            {
                await ExecuteAsync(connection, Sql(PostgreSqlSchema.Migrations[version - 1]), cancellationToken);
                await using var record = new NpgsqlCommand($"INSERT INTO {Schema}.schema_version (version, applied_by) VALUES ($1, $2);", connection);
                record.Parameters.Add(new() { Value = version });
                record.Parameters.Add(new() { Value = $"{Environment.MachineName}:{Environment.ProcessId}" });
                await record.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
            _migrated = true;
            IndexesBuilt = Task.Run(BuildIndexesAsync);
            if (current < PostgreSqlSchema.Migrations.Length)
            {
                Log.Migrated(_logger, SchemaName, current, PostgreSqlSchema.Migrations.Length);
            }
        }
        catch (Exception ex)
        {
            _failedAt = Environment.TickCount64;
            ForgetConnections(ex);
            Log.MigrationFailed(_logger, ex, SchemaName);
            throw;
        }
    }

    /// <summary>Completes when the background index build of this instance has ended (built, found, or left to another instance); for tests.</summary>
    internal Task IndexesBuilt { get; private set; } = Task.CompletedTask;

    /// <summary>
    /// Builds <see cref="PostgreSqlSchema.CreatedAtIndex"/> CONCURRENTLY (writes go on meanwhile), with no statement time
    /// limit, unless it is there and valid; an invalid one is dropped first. Only the instance that gets the session
    /// advisory lock builds; a failure is logged, and the usage figures read the ledger without the index until a restart
    /// builds it.
    /// </summary>
    private async Task BuildIndexesAsync()
    {
        try
        {
            await using var connection = await DataSource.OpenConnectionAsync();
            var lockKey = $"{PostgreSqlSchema.AdvisoryLockClass + 1}, hashtext('{SchemaName}')";
            await using (var locked = new NpgsqlCommand($"SELECT pg_try_advisory_lock({lockKey});", connection))
            {
                if (!(bool)(await locked.ExecuteScalarAsync())!)
                {
                    return;
                }
            }

            try
            {
                await ExecuteAsync(connection, "SET statement_timeout = 0;", CancellationToken.None);
                await using var state = new NpgsqlCommand("""
                    SELECT i.indisvalid FROM pg_index i
                    JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = $1 AND c.relname = $2;
                    """, connection);
                state.Parameters.Add(new() { Value = SchemaName });
                state.Parameters.Add(new() { Value = PostgreSqlSchema.CreatedAtIndex });
                var valid = await state.ExecuteScalarAsync() as bool?;
                if (valid == true)
                {
                    return;
                }

                if (valid == false)
                {
                    await ExecuteAsync(connection, $"DROP INDEX CONCURRENTLY IF EXISTS {Schema}.{PostgreSqlSchema.CreatedAtIndex};", CancellationToken.None);
                }

                await ExecuteAsync(connection, $"CREATE INDEX CONCURRENTLY IF NOT EXISTS {PostgreSqlSchema.CreatedAtIndex} ON {Schema}.ledger USING brin (created_at);", CancellationToken.None);
                Log.IndexBuilt(_logger, SchemaName, PostgreSqlSchema.CreatedAtIndex);
            }
            finally
            {
                await ExecuteAsync(connection, $"RESET statement_timeout; SELECT pg_advisory_unlock({lockKey});", CancellationToken.None);
            }
        }
        catch (Exception ex)
        {
            Log.IndexFailed(_logger, ex, SchemaName, PostgreSqlSchema.CreatedAtIndex);
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static string Quote(string identifier) => "\"" + identifier.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";

    internal static DateTimeOffset ReadTime(NpgsqlDataReader reader, int ordinal) =>
        new(DateTime.SpecifyKind(reader.GetDateTime(ordinal), DateTimeKind.Utc));

    private static partial class Log
    {
        [LoggerMessage(8005, LogLevel.Information, "PostgreSQL index {Schema}.{Index} built (concurrently; writes went on meanwhile).", EventName = "PostgreSqlIndexBuilt")]
        public static partial void IndexBuilt(ILogger logger, string schema, string index);

        [LoggerMessage(8006, LogLevel.Warning, "PostgreSQL index {Schema}.{Index} could not be built; the admin API's usage figures read the ledger without it until a restart builds it.", EventName = "PostgreSqlIndexFailed")]
        public static partial void IndexFailed(ILogger logger, Exception exception, string schema, string index);

        [LoggerMessage(8001, LogLevel.Information, "PostgreSQL schema {Schema} migrated from version {From} to {To}.", EventName = "PostgreSqlMigrated")]
        public static partial void Migrated(ILogger logger, string schema, int from, int to);

        [LoggerMessage(8002, LogLevel.Error, "PostgreSQL schema {Schema} could not be created or migrated; priced calls answer ledger_unavailable until it can, and it is tried again on the next store call.", EventName = "PostgreSqlMigrationFailed")]
        public static partial void MigrationFailed(ILogger logger, Exception exception, string schema);
    }
}
