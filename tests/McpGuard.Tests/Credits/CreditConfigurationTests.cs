using Microsoft.Extensions.Configuration;
using System.Net;
using McpGuard.Credits;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace McpGuard.Tests.Credits;

/// <summary>How the credit settings bind, validate, choose the store and seed it.</summary>
public sealed class CreditConfigurationTests
{
    [Fact]
    public void Configured_prices_are_formatted_once_for_the_charge_header()
    {
        var options = new McpGuardOptions();
        options.Credits.DefaultPrice = 250;
        options.Tools["add"] = new McpGuardToolPolicy { Price = 800 };
        options.Tools["sum"] = new McpGuardToolPolicy { Price = 800 };
        options.Methods["resources/read"] = new McpGuardMethodPolicy { Price = 1_000_000 };

        var credits = new CreditState(options);

        Assert.Equal([(250L, "250"), (800L, "800"), (1_000_000L, "1000000")], credits.PriceTexts.OrderBy(p => p.Key).Select(p => (p.Key, p.Value)));
        Assert.Same(credits.PriceText(800), credits.PriceText(800));
        Assert.Equal("123456789", credits.PriceText(123_456_789));
    }

    [Fact]
    public async Task The_samples_credit_settings_bind_as_documented()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        var credits = host.Services.GetRequiredService<McpGuardStateProvider>().Current.Credits;

        Assert.True(credits.Enabled);
        Assert.Equal(0, credits.DefaultPrice);
        Assert.Equal("https://billing.example.com/topup", credits.TopUpUrl);
        Assert.Equal(TimeSpan.FromSeconds(30), credits.UpstreamTimeout);
        Assert.True(credits.RefundToolInternalErrors);
        Assert.Equal(McpGuardCreditOptions.DefaultFreeMethods.Order(StringComparer.Ordinal), credits.FreeMethods.Order(StringComparer.Ordinal));
        Assert.Equal(
            [("add", 800L), ("echo", 0L), ("fail", 100L), ("premium_report", 5000L), ("search", 20L), ("slow", 100L)],
            credits.ToolPrices.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => (p.Key, p.Value)));
        // search is metered: 2 per unit, at most 20 (what ToolPrices holds, the amount reserved before it runs).
        Assert.Equal(new ToolMeter(2, 20), Assert.Single(credits.Meters, m => m.Key == "search").Value);
        Assert.Empty(credits.ToolStatuses);
        Assert.Equal([("bob", 3)], credits.FreeCalls.Select(p => (p.Key, p.Value)));
        ValueAssert.Equal(
            [
                new McpGuardAccount("alice", 1_000_000, 2_000_000, 0, 0),
                new McpGuardAccount("bob", 240, null, 0, 0),
                // Carol's suspension stays in configuration, where a reload can lift it; the ledger's flag is the admin API's.
                new McpGuardAccount("carol", 0, null, 0, 0),
            ],
            credits.Seeds.OrderBy(s => s.Id, StringComparer.Ordinal).ToArray());
        var options = host.Services.GetRequiredService<IOptions<McpGuardOptions>>().Value;
        Assert.Equal(McpGuardStoreKind.Sqlite, options.Store);
        Assert.Null(options.Credits.Store);
        Assert.Equal(McpGuardErrorFormat.JsonRpc, options.Errors.Format);
        Assert.Equal(-32402, host.Services.GetRequiredService<McpGuardStateProvider>().Current.Catalog[McpGuardReasons.OutOfCredit].Code);
    }

    [Fact]
    public void Validation_reports_every_credit_problem_at_once()
    {
        var options = new McpGuardOptions();
        options.Credits.Enabled = true;
        options.Credits.SqlitePath = " ";
        options.Credits.DefaultPrice = -1;
        options.Credits.UpstreamTimeout = TimeSpan.Zero;
        options.Credits.TopUpUrl = "ftp://billing.example.com/topup";
        options.Credits.RetentionDays = 0;
        options.Tools["add"] = new McpGuardToolPolicy { Price = -5, Status = (McpGuardToolStatus)9 };
        options.Tools["echo"] = new McpGuardToolPolicy { Price = 0 };
        options.Methods["resources/read"] = new McpGuardMethodPolicy { Price = -2 };
        options.Accounts["a"] = new McpGuardAccountOptions { InitialBalance = -1, MonthlyCap = -2, FreeCallsPerMonth = -3 };
        options.Accounts["b"] = new McpGuardAccountOptions { InitialBalance = 0, MonthlyCap = 0 };
        var errors = new List<string>();

        CreditOptionsValidation.Validate(options, errors);

        Assert.Equal(
            [
                "McpGuard:Credits:Enabled needs authentication (McpGuard:Auth:ApiKeys or McpGuard:Auth:Jwt): a priced call is charged to the caller's account.",
                "McpGuard:Credits:SqlitePath must name the SQLite file.",
                "McpGuard:Credits:DefaultPrice must be 0 or more micro-units (got -1).",
                "McpGuard:Credits:UpstreamTimeout must be between 00:00:00 (exclusive) and 01:00:00 (got 00:00:00).",
                "McpGuard:Credits:RetentionDays must be between 1 and 36500 days, or unset to keep every row (got 0).",
                "McpGuard:Credits:TopUpUrl must be an absolute http(s) URL (got 'ftp://billing.example.com/topup').",
                "McpGuard:Tools:add:Price must be 0 or more micro-units (got -5).",
                "McpGuard:Tools:add:Status must be Live, Paused or Archived (got '9').",
                "McpGuard:Methods:resources/read:Price must be 0 or more micro-units (got -2).",
                "McpGuard:Accounts:a:InitialBalance must be 0 or more micro-units (got -1).",
                "McpGuard:Accounts:a:MonthlyCap must be 0 or more micro-units (got -2).",
                "McpGuard:Accounts:a:FreeCallsPerMonth must be 0 or more (got -3).",
            ],
            errors);
    }

    [Theory]
    [InlineData("01:00:00", true)]
    [InlineData("01:00:00.001", false)]
    [InlineData("00:00:00.001", true)]
    [InlineData("-00:00:01", false)]
    public void The_upstream_timeout_lies_within_an_hour(string timeout, bool valid)
    {
        var options = new McpGuardOptions();
        options.Credits.UpstreamTimeout = TimeSpan.Parse(timeout, System.Globalization.CultureInfo.InvariantCulture);
        options.Credits.Store = (McpGuardStoreKind)5;
        var errors = new List<string>();

        CreditOptionsValidation.Validate(options, errors);

        Assert.Equal(
            valid ? ["McpGuard:Credits:Store must be Sqlite or InMemory (got '5')."]
                  : ["McpGuard:Credits:Store must be Sqlite or InMemory (got '5').", $"McpGuard:Credits:UpstreamTimeout must be between 00:00:00 (exclusive) and 01:00:00 (got {options.Credits.UpstreamTimeout})."],
            errors);
    }

    [Fact]
    public async Task Credits_without_authentication_fail_at_start()
    {
        var exception = await Assert.ThrowsAsync<OptionsValidationException>(() => GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app =>
            {
                app.UseMcpGuard();
                app.MapPost("/mcp", (HttpContext _) => Results.Ok());
            },
            new Dictionary<string, string?> { ["McpGuard:Credits:Enabled"] = "true", ["McpGuard:Credits:DefaultPrice"] = "-7" }));

        Assert.Equal(
            [
                "McpGuard:Credits:Enabled needs authentication (McpGuard:Auth:ApiKeys or McpGuard:Auth:Jwt): a priced call is charged to the caller's account.",
                "McpGuard:Credits:DefaultPrice must be 0 or more micro-units (got -7).",
            ],
            exception.Failures);
    }

    [Fact]
    public async Task With_credits_off_nothing_is_charged_and_the_file_holds_no_money()
    {
        var path = LedgerFile.NewPath();
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Credits:Enabled"] = "false",
            ["McpGuard:SqlitePath"] = path,
        });

        using var add = await CreditCalls.CallAsync(host, CreditCalls.Add(1), "off-1", DemoKeys.Bob);
        using var again = await CreditCalls.CallAsync(host, CreditCalls.Add(2), "off-1", DemoKeys.Bob);

        await CreditCalls.AssertAddedAsync(add, 1);
        await CreditCalls.AssertAddedAsync(again, 2);
        Assert.Null(CreditCalls.Header(add, CreditCalls.ChargeHeader));
        Assert.Null(CreditCalls.Header(add, CreditCalls.BalanceHeader));

        // The file keeps what works without credits (run-time keys, suspensions, tool statuses); no account, no row.
        Assert.Empty(LedgerFile.Rows(path));
        Assert.Equal(0, LedgerFile.Scalar(path, "SELECT COUNT(*) FROM accounts;"));
    }

    [Fact]
    public async Task A_default_price_charges_tools_without_a_price_of_their_own_but_not_free_methods()
    {
        await using var host = await GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app =>
            {
                app.UseMcpGuard();
                app.MapPost("/mcp", CreditCalls.AnswerWithResult);
            },
            GuardConfiguration.ApiKeys(GuardConfiguration.Alice()).WithCredits("InMemory", ("alice", 1000)).With(new Dictionary<string, string?>
            {
                ["McpGuard:Credits:DefaultPrice"] = "25",
                ["McpGuard:Tools:free_tool:Price"] = "0",
                ["McpGuard:Methods:resources/read:Price"] = "40",
            }));

        using var unpriced = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(1, "anything", "{}"), "dp-1");
        using var free = await CreditCalls.CallAsync(host, CreditCalls.ToolCall(2, "free_tool", "{}"), "dp-2");
        using var list = await CreditCalls.CallAsync(host, """{"jsonrpc":"2.0","id":3,"method":"tools/list"}""", "dp-3");
        using var read = await CreditCalls.CallAsync(host, """{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"file:///x"}}""", "dp-4");
        using var prompt = await CreditCalls.CallAsync(host, """{"jsonrpc":"2.0","id":5,"method":"prompts/get","params":{"name":"p"}}""", "dp-5");

        Assert.Equal(("25", "975"), (CreditCalls.Header(unpriced, CreditCalls.ChargeHeader), CreditCalls.Header(unpriced, CreditCalls.BalanceHeader)));
        Assert.Null(CreditCalls.Header(free, CreditCalls.ChargeHeader));
        Assert.Null(CreditCalls.Header(list, CreditCalls.ChargeHeader));
        Assert.Equal(("40", "935"), (CreditCalls.Header(read, CreditCalls.ChargeHeader), CreditCalls.Header(read, CreditCalls.BalanceHeader)));
        Assert.Null(CreditCalls.Header(prompt, CreditCalls.ChargeHeader));
        var store = host.Services.GetRequiredService<IMcpGuardLedgerStore>();
        var page = await store.GetLedgerAsync("alice", null, 10, default);
        Assert.Equal([("dp-4", "resources/read", -40L), ("dp-1", "anything", -25L), ((string?)null, (string?)null, 1000L)], page.Entries.Select(e => (e.RequestId, e.Tool, e.AmountMicro)));
    }

    [Fact]
    public async Task Seeds_apply_once_a_restart_on_the_same_file_keeps_the_balance_even_if_the_seed_changed()
    {
        var path = LedgerFile.NewPath();
        await using (var first = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:SqlitePath"] = path }))
        {
            using var add = await CreditCalls.CallAsync(first, CreditCalls.Add(1), "seed-1");
            Assert.Equal("999200", CreditCalls.Header(add, CreditCalls.BalanceHeader));
            Assert.Single(first.Logs.Entries, e => e.EventId.Id == 6001);
        }

        await using var second = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:SqlitePath"] = path,
            ["McpGuard:Accounts:alice:InitialBalance"] = "5",
            ["McpGuard:Accounts:dave:InitialBalance"] = "7000",
        });
        using var again = await CreditCalls.CallAsync(second, CreditCalls.Add(2), "seed-2");

        Assert.Equal("998400", CreditCalls.Header(again, CreditCalls.BalanceHeader));
        Assert.DoesNotContain(second.Logs.Entries, e => e.EventId.Id == 6001);
        var rows = LedgerFile.Rows(path);
        Assert.Equal(
            [("alice", "seed", 1_000_000L), ("bob", "seed", 240L)],
            rows.Where(r => r.Kind == "TopUp").Select(r => (r.Account, r.Note!, r.Amount)));
        Assert.Equal(["seed-1", "seed-2"], rows.Where(r => r.Kind == "Usage").Select(r => r.RequestId));
        Assert.Equal(["alice", "bob", "carol"], LedgerFile.Strings(path, "SELECT id FROM accounts ORDER BY id;"));
    }

    [Fact]
    public async Task The_in_memory_store_starts_from_the_seeds_on_every_start()
    {
        var configuration = new Dictionary<string, string?> { ["McpGuard:Store"] = "InMemory" };
        string? firstBalance;
        await using (var first = await GuardedHost.StartSampleAsync(configuration))
        {
            using var add = await CreditCalls.CallAsync(first, CreditCalls.Add(1), "mem-1");
            firstBalance = CreditCalls.Header(add, CreditCalls.BalanceHeader);
            Assert.False(File.Exists(CreditCalls.LedgerPath(first)));
        }

        await using var second = await GuardedHost.StartSampleAsync(configuration);
        using var again = await CreditCalls.CallAsync(second, CreditCalls.Add(1), "mem-1");

        Assert.Equal("999200", firstBalance);
        Assert.Equal("999200", CreditCalls.Header(again, CreditCalls.BalanceHeader));
    }

    [Fact]
    public async Task A_relative_sqlite_path_is_under_the_content_root()
    {
        var relative = Path.Combine("ledgers", $"relative-{Guid.NewGuid():N}.db");
        var expected = Path.Combine(AppContext.BaseDirectory, relative);
        try
        {
            await using (var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:SqlitePath"] = relative }))
            {
                using var add = await CreditCalls.CallAsync(host, CreditCalls.Add(1), "rel-1");
                Assert.Equal(HttpStatusCode.OK, add.StatusCode);
            }

            Assert.Equal(["rel-1"], LedgerFile.Rows(expected).Where(r => r.RequestId is not null).Select(r => r.RequestId));
        }
        finally
        {
            foreach (var file in Directory.GetFiles(Path.GetDirectoryName(expected)!, Path.GetFileName(expected) + "*"))
            {
                File.Delete(file);
            }
        }
    }

    [Fact]
    public async Task The_ledger_is_opened_and_seeded_when_the_host_starts()
    {
        var path = LedgerFile.NewPath();
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:SqlitePath"] = path });

        // No request yet.
        Assert.Equal(
            [("alice", "TopUp", 1_000_000L), ("bob", "TopUp", 240L)],
            LedgerFile.Rows(path).Select(r => (r.Account, r.Kind, r.Amount)));
        var seeded = Assert.Single(host.Logs.Entries, e => e.EventId.Id == 6001);
        Assert.Equal((LogLevel.Information, "Seeded an empty ledger with 3 accounts from McpGuard:Accounts."), (seeded.Level, seeded.Message));
    }
}
