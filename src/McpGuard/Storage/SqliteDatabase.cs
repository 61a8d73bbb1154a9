using System.Globalization;
using Microsoft.Data.Sqlite;

namespace McpGuard.Storage;

/// <summary>
/// The SQLite file that can back every McpGuard store: API keys, account status, tool status and the ledger each
/// have tables of their own in it, and each store opens its own connections. The file is created and its schema
/// migrated (<c>PRAGMA user_version</c>) once, when the first store needs it.
/// </summary>
internal sealed class SqliteDatabase
{
    internal const int SchemaVersion = 2;

    private readonly Lazy<bool> _migrated;

    public SqliteDatabase(string path)
    {
        Path = path;
        ConnectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString();
        _migrated = new(Migrate);
    }

    /// <summary>The file's full path.</summary>
    public string Path { get; }

    public string ConnectionString { get; }

    /// <summary>
    /// An open connection in WAL mode, the schema migrated. <paramref name="synchronous"/> is SQLite's
    /// <c>synchronous</c> setting for it: <c>NORMAL</c> survives the process being killed, <c>FULL</c> power loss too.
    /// </summary>
    public SqliteConnection Open(string synchronous = "NORMAL")
    {
        _ = _migrated.Value;
        return OpenRaw(synchronous);
    }

    private SqliteConnection OpenRaw(string synchronous)
    {
        var connection = new SqliteConnection(ConnectionString);
        connection.Open();
        Execute(connection, $"PRAGMA journal_mode=WAL; PRAGMA synchronous={synchronous}; PRAGMA busy_timeout=5000;");
        return connection;
    }

    private bool Migrate()
    {
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(Path))!);
        using var connection = OpenRaw("NORMAL");

        // The version is read inside the write transaction, so two processes opening a new file together cannot both
        // create the schema.
        using var transaction = connection.BeginTransaction(deferred: false);
        using (var version = connection.CreateCommand())
        {
            version.Transaction = transaction;
            version.CommandText = "PRAGMA user_version;";
            var current = Convert.ToInt32(version.ExecuteScalar(), CultureInfo.InvariantCulture);
            if (current > SchemaVersion)
            {
                throw new InvalidOperationException($"The McpGuard database '{Path}' has schema version {current}; this McpGuard knows up to {SchemaVersion}. Use a newer McpGuard.");
            }

            if (current < 1)
            {
                Execute(connection, transaction, """
                    CREATE TABLE accounts (id TEXT PRIMARY KEY, monthly_cap INTEGER NULL, created_at TEXT NOT NULL);
                    CREATE TABLE ledger (
                        id INTEGER PRIMARY KEY, account TEXT NOT NULL, kind TEXT NOT NULL, amount INTEGER NOT NULL,
                        balance_after INTEGER NOT NULL, tool TEXT NULL, request_id TEXT NULL, free INTEGER NOT NULL DEFAULT 0,
                        note TEXT NULL, created_at TEXT NOT NULL);
                    CREATE INDEX ledger_by_account ON ledger (account, id);
                    CREATE UNIQUE INDEX ledger_by_request ON ledger (request_id, kind) WHERE request_id IS NOT NULL;
                    CREATE TABLE api_keys (id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, account TEXT NOT NULL, scopes TEXT NOT NULL,
                        expires_at TEXT NULL, revoked INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
                    CREATE TABLE tool_status (tool TEXT PRIMARY KEY, status TEXT NOT NULL);
                    CREATE TABLE account_status (account TEXT PRIMARY KEY, suspended INTEGER NOT NULL);
                    PRAGMA user_version = 2;
                    """);
            }
            else if (current == 1)
            {
                // Version 1 kept suspension on the ledger's accounts table; it is the account-status store's now.
                Execute(connection, transaction, """
                    CREATE TABLE account_status (account TEXT PRIMARY KEY, suspended INTEGER NOT NULL);
                    INSERT INTO account_status (account, suspended) SELECT id, 1 FROM accounts WHERE suspended <> 0;
                    ALTER TABLE accounts DROP COLUMN suspended;
                    PRAGMA user_version = 2;
                    """);
            }
        }

        transaction.Commit();
        return true;
    }

    public static void Execute(SqliteConnection connection, string sql) => Execute(connection, null, sql);

    public static void Execute(SqliteConnection connection, SqliteTransaction? transaction, string sql)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }
}
