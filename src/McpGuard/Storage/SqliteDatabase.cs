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
    internal const int SchemaVersion = 4;

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

    /// <summary>Whether the file can be opened and read now (for health checks): reads its schema on a new connection.</summary>
    public void Check()
    {
        using var connection = Open();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT count(*) FROM sqlite_master;";
        _ = command.ExecuteScalar();
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
                    CREATE TABLE accounts (id TEXT PRIMARY KEY, monthly_cap INTEGER NULL, created_at TEXT NOT NULL,
                        balance INTEGER NOT NULL DEFAULT 0, month INTEGER NOT NULL DEFAULT -1, month_spent INTEGER NOT NULL DEFAULT 0,
                        month_free INTEGER NOT NULL DEFAULT 0);
                    CREATE TABLE ledger (
                        id INTEGER PRIMARY KEY, account TEXT NOT NULL, kind TEXT NOT NULL, amount INTEGER NOT NULL,
                        balance_after INTEGER NOT NULL, tool TEXT NULL, request_id TEXT NULL, free INTEGER NOT NULL DEFAULT 0,
                        note TEXT NULL, created_at TEXT NOT NULL);
                    CREATE INDEX ledger_by_account ON ledger (account, id);
                    CREATE UNIQUE INDEX ledger_by_request ON ledger (request_id, kind) WHERE request_id IS NOT NULL;
                    CREATE TABLE ledger_daily (account TEXT NOT NULL, day TEXT NOT NULL, tool TEXT NOT NULL, kind TEXT NOT NULL,
                        free INTEGER NOT NULL, rows INTEGER NOT NULL, amount INTEGER NOT NULL, last_id INTEGER NOT NULL,
                        PRIMARY KEY (account, day, tool, kind, free)) WITHOUT ROWID;
                    CREATE TABLE ledger_checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), last_id INTEGER NOT NULL);
                    INSERT INTO ledger_checkpoint (id, last_id) VALUES (1, 0);
                    CREATE TABLE api_keys (id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, account TEXT NOT NULL, scopes TEXT NOT NULL,
                        expires_at TEXT NULL, revoked INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
                    CREATE TABLE tool_status (tool TEXT PRIMARY KEY, status TEXT NOT NULL);
                    CREATE TABLE account_status (account TEXT PRIMARY KEY, suspended INTEGER NOT NULL);
                    PRAGMA user_version = 3;
                    """);
                current = 3;
            }

            if (current == 1)
            {
                // Version 1 kept suspension on the ledger's accounts table; it is the account-status store's now.
                Execute(connection, transaction, """
                    CREATE TABLE account_status (account TEXT PRIMARY KEY, suspended INTEGER NOT NULL);
                    INSERT INTO account_status (account, suspended) SELECT id, 1 FROM accounts WHERE suspended <> 0;
                    ALTER TABLE accounts DROP COLUMN suspended;
                    PRAGMA user_version = 2;
                    """);
                current = 2;
            }

            if (current == 2)
            {
                // Version 3 keeps each account's totals next to its rows, as of the checkpoint row (a start reads those and
                // the rows after the checkpoint, not every row), and the daily totals of rolled-up rows. Computed once here
                // from the rows: the balance is their sum; the month is the latest month with a charge, its spend and free
                // calls those of its charges not refunded; the checkpoint is the last row.
                Execute(connection, transaction, """
                    ALTER TABLE accounts ADD COLUMN balance INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE accounts ADD COLUMN month INTEGER NOT NULL DEFAULT -1;
                    ALTER TABLE accounts ADD COLUMN month_spent INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE accounts ADD COLUMN month_free INTEGER NOT NULL DEFAULT 0;
                    CREATE TABLE ledger_daily (account TEXT NOT NULL, day TEXT NOT NULL, tool TEXT NOT NULL, kind TEXT NOT NULL,
                        free INTEGER NOT NULL, rows INTEGER NOT NULL, amount INTEGER NOT NULL, last_id INTEGER NOT NULL,
                        PRIMARY KEY (account, day, tool, kind, free)) WITHOUT ROWID;
                    INSERT INTO accounts (id, monthly_cap, created_at)
                        SELECT account, NULL, MIN(created_at) FROM ledger WHERE account NOT IN (SELECT id FROM accounts) GROUP BY account;
                    CREATE TEMP TABLE charges AS
                        SELECT u.account AS account, u.amount AS amount, u.free AS free,
                            CAST(substr(u.created_at, 1, 4) AS INTEGER) * 12 + CAST(substr(u.created_at, 6, 2) AS INTEGER) - 1 AS month,
                            EXISTS (SELECT 1 FROM ledger r WHERE r.request_id = u.request_id AND r.kind = 'Refund') AS refunded
                        FROM ledger u WHERE u.kind = 'Usage';
                    CREATE INDEX temp.charges_by_account ON charges (account, month);
                    UPDATE accounts SET
                        balance = COALESCE((SELECT SUM(amount) FROM ledger WHERE ledger.account = accounts.id), 0),
                        month = COALESCE((SELECT MAX(month) FROM temp.charges c WHERE c.account = accounts.id), -1);
                    UPDATE accounts SET
                        month_spent = COALESCE((SELECT -SUM(amount) FROM temp.charges c
                            WHERE c.account = accounts.id AND c.month = accounts.month AND c.free = 0 AND NOT c.refunded), 0),
                        month_free = (SELECT COUNT(*) FROM temp.charges c
                            WHERE c.account = accounts.id AND c.month = accounts.month AND c.free <> 0 AND NOT c.refunded);
                    DROP TABLE temp.charges;
                    CREATE TABLE ledger_checkpoint (id INTEGER PRIMARY KEY CHECK (id = 1), last_id INTEGER NOT NULL);
                    INSERT INTO ledger_checkpoint (id, last_id) VALUES (1, COALESCE((SELECT MAX(id) FROM ledger), 0));
                    PRAGMA user_version = 3;
                    """);
                current = 3;
            }

            if (current == 3)
            {
                // Version 4 keeps the reservations still held beside their rows (metered prices): a start finds them without
                // reading the ledger.
                Execute(connection, transaction, """
                    CREATE TABLE ledger_holds (request_id TEXT PRIMARY KEY, account TEXT NOT NULL, tool TEXT NULL,
                        amount INTEGER NOT NULL, created_at TEXT NOT NULL) WITHOUT ROWID;
                    ALTER TABLE api_keys ADD COLUMN max_price INTEGER NULL;
                    PRAGMA user_version = 4;
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
