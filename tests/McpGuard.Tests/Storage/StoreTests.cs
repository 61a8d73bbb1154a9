using System.Security.Cryptography;
using System.Text;
using McpGuard.Auth;
using McpGuard.Storage;
using McpGuard.Tests.Infrastructure;
using McpGuard.Tools;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.Storage;

/// <summary>
/// One store per capability (API keys, account status, tool status, money), each in memory or in McpGuard's one SQLite
/// file: what each keeps survives a restart on SQLite, a version-1 file (suspension on the ledger's accounts table) is
/// migrated, and <c>McpGuard:Store</c> / <c>McpGuard:SqlitePath</c> place them all (the old <c>Credits:</c> keys still
/// work, with a warning).
/// </summary>
public sealed class StoreTests : IDisposable
{
    private readonly string _path = LedgerFile.NewPath();
    private readonly FakeTimeProvider _clock = new(new DateTimeOffset(2026, 12, 4, 9, 0, 0, TimeSpan.Zero));

    public void Dispose() => LedgerFile.Delete(_path);

    public static TheoryData<bool> Kinds => new() { true, false };

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Api_keys_are_found_by_hash_revoked_for_good_and_never_added_twice(bool sqlite)
    {
        var store = KeyStore(sqlite);
        var hash = Sha256("mcpg_store_dave");

        Assert.Null(await store.FindAsync(hash, default));
        await store.AddAsync(new McpGuardApiKey("dave-1", "dave", ["tools:basic"], expiresAt: _clock.GetUtcNow().AddDays(30)), hash, default);
        var found = await store.FindAsync(hash, default);
        Assert.Equal(("dave-1", "dave", false), (found!.Id, found.Account, found.Revoked));
        Assert.Equal(["tools:basic"], found.Scopes);

        var duplicate = await Assert.ThrowsAsync<InvalidOperationException>(async () => await store.AddAsync(new McpGuardApiKey("dave-1", "eve", []), Sha256("other"), default));
        Assert.Equal("A key with id 'dave-1' (or the same secret) already exists.", duplicate.Message);

        Assert.True(await store.RevokeAsync("dave-1", default));
        Assert.True((await store.FindAsync(hash, default))!.Revoked);
        Assert.False(await store.RevokeAsync("nobody", default));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public async Task Suspensions_and_tool_statuses_follow_every_change(bool sqlite)
    {
        var (accounts, tools) = (AccountStore(sqlite), ToolStore(sqlite));

        Assert.False(await accounts.IsSuspendedAsync("a", default));
        await accounts.SetSuspendedAsync("a", true, default);
        Assert.True(await accounts.IsSuspendedAsync("a", default));
        await accounts.SetSuspendedAsync("a", false, default);
        Assert.False(await accounts.IsSuspendedAsync("a", default));

        Assert.Null(await tools.GetStatusAsync("add", default));
        await tools.SetStatusAsync("add", McpGuardToolStatus.Paused, default);
        Assert.Equal(McpGuardToolStatus.Paused, await tools.GetStatusAsync("add", default));
        await tools.SetStatusAsync("add", McpGuardToolStatus.Archived, default);
        Assert.Equal(McpGuardToolStatus.Archived, await tools.GetStatusAsync("add", default));
        await tools.SetStatusAsync("add", null, default);
        Assert.Null(await tools.GetStatusAsync("add", default));
    }

    [Fact]
    public async Task On_sqlite_keys_suspensions_and_tool_statuses_survive_a_restart()
    {
        var keys = KeyStore(sqlite: true);
        await keys.AddAsync(new McpGuardApiKey("k-1", "a", ["tools:basic", "tools:premium"], expiresAt: new DateTimeOffset(2027, 1, 1, 0, 0, 0, TimeSpan.Zero)), Sha256("k1"), default);
        await keys.AddAsync(new McpGuardApiKey("k-2", "a", []), Sha256("k2"), default);
        await keys.RevokeAsync("k-2", default);
        await AccountStore(sqlite: true).SetSuspendedAsync("b", true, default);
        await ToolStore(sqlite: true).SetStatusAsync("echo", McpGuardToolStatus.Paused, default);

        var reopened = KeyStore(sqlite: true);
        var k1 = (await reopened.FindAsync(Sha256("k1"), default))!;
        Assert.Equal(("k-1", "a", (DateTimeOffset?)new DateTimeOffset(2027, 1, 1, 0, 0, 0, TimeSpan.Zero), false), (k1.Id, k1.Account, k1.ExpiresAt, k1.Revoked));
        Assert.Equal(["tools:basic", "tools:premium"], k1.Scopes);
        Assert.True((await reopened.FindAsync(Sha256("k2"), default))!.Revoked);
        Assert.True(await AccountStore(sqlite: true).IsSuspendedAsync("b", default));
        Assert.Equal(McpGuardToolStatus.Paused, await ToolStore(sqlite: true).GetStatusAsync("echo", default));
    }

    [Fact]
    public async Task A_version_1_file_is_migrated_and_its_suspended_accounts_stay_suspended()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        using (var connection = new SqliteConnection($"Data Source={_path};Pooling=False"))
        {
            connection.Open();
            SqliteDatabase.Execute(connection, """
                CREATE TABLE accounts (id TEXT PRIMARY KEY, monthly_cap INTEGER NULL, suspended INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
                CREATE TABLE ledger (id INTEGER PRIMARY KEY, account TEXT NOT NULL, kind TEXT NOT NULL, amount INTEGER NOT NULL,
                    balance_after INTEGER NOT NULL, tool TEXT NULL, request_id TEXT NULL, free INTEGER NOT NULL DEFAULT 0, note TEXT NULL, created_at TEXT NOT NULL);
                CREATE INDEX ledger_by_account ON ledger (account, id);
                CREATE UNIQUE INDEX ledger_by_request ON ledger (request_id, kind) WHERE request_id IS NOT NULL;
                CREATE TABLE api_keys (id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, account TEXT NOT NULL, scopes TEXT NOT NULL,
                    expires_at TEXT NULL, revoked INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL);
                CREATE TABLE tool_status (tool TEXT PRIMARY KEY, status TEXT NOT NULL);
                INSERT INTO accounts VALUES ('carol', NULL, 1, '2026-01-01T00:00:00.0000000Z'), ('alice', 5000, 0, '2026-01-01T00:00:00.0000000Z');
                INSERT INTO ledger VALUES (1, 'alice', 'TopUp', 700, 700, NULL, NULL, 0, 'seed', '2026-01-01T00:00:00.0000000Z');
                PRAGMA user_version = 1;
                """);
        }

        Assert.True(await AccountStore(sqlite: true).IsSuspendedAsync("carol", default));
        Assert.False(await AccountStore(sqlite: true).IsSuspendedAsync("alice", default));
        Assert.Equal(4, LedgerFile.Scalar(_path, "PRAGMA user_version;"));
        Assert.Equal(["id", "monthly_cap", "created_at", "balance", "month", "month_spent", "month_free"], LedgerFile.Strings(_path, "SELECT name FROM pragma_table_info('accounts');"));
        await using var ledger = new McpGuard.Credits.LedgerEngine(new McpGuard.Credits.SqliteJournal(new SqliteDatabase(_path)), _clock, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);
        ValueAssert.Equal(new McpGuardAccount("alice", 700, 5000, 0, 0), await ledger.GetAccountAsync("alice", 0, _clock.GetUtcNow(), default));
    }

    [Theory]
    [InlineData("McpGuard:Store", "McpGuard:SqlitePath", false)]
    [InlineData("McpGuard:Credits:Store", "McpGuard:Credits:SqlitePath", true)]
    public async Task Store_and_SqlitePath_place_every_store_and_the_old_credits_keys_still_work_with_a_warning(string storeKey, string pathKey, bool deprecated)
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:SqlitePath"] = null,
            [storeKey] = "Sqlite",
            [pathKey] = _path,
        });

        Assert.IsType<SqliteApiKeyStore>(host.Services.GetRequiredService<IMcpGuardApiKeyStore>());
        Assert.IsType<McpGuard.Credits.LedgerEngine>(host.Services.GetRequiredService<IMcpGuardLedgerStore>());
        Assert.Equal(_path, host.Services.GetRequiredService<SqliteDatabase>().Path);
        Assert.Equal(2, LedgerFile.Rows(_path).Count(r => r.Kind == "TopUp")); // alice and bob seeded in the one file
        var warnings = host.Logs.Entries.Where(e => e.EventId.Id == 1003).ToList();
        if (deprecated)
        {
            var warning = Assert.Single(warnings);
            Assert.Equal(LogLevel.Warning, warning.Level);
            Assert.Equal("McpGuard:Credits:Store and McpGuard:Credits:SqlitePath are deprecated: set McpGuard:Store and McpGuard:SqlitePath, which place every store (keys, account status, tool status and the ledger).", warning.Message);
        }
        else
        {
            Assert.Empty(warnings);
        }
    }

    [Fact]
    public async Task In_memory_stores_leave_no_file()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Store"] = "InMemory", ["McpGuard:SqlitePath"] = _path });

        Assert.IsType<InMemoryApiKeyStore>(host.Services.GetRequiredService<IMcpGuardApiKeyStore>());
        Assert.False(File.Exists(_path));
    }

    private IMcpGuardApiKeyStore KeyStore(bool sqlite) => sqlite ? new SqliteApiKeyStore(new SqliteDatabase(_path), _clock) : new InMemoryApiKeyStore();

    private IMcpGuardAccountStatusStore AccountStore(bool sqlite) => sqlite ? new AccountStatusStore(new SqliteDatabase(_path)) : _accounts;

    private IMcpGuardToolStatusStore ToolStore(bool sqlite) => sqlite ? new ToolStatusStore(new SqliteDatabase(_path)) : _tools;

    private readonly AccountStatusStore _accounts = new();
    private readonly ToolStatusStore _tools = new();

    private static byte[] Sha256(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
