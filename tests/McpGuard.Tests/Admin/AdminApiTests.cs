using System.Net;
using System.Text.Json.Nodes;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using static McpGuard.Tests.Admin.AdminTestKit;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Admin;

/// <summary>
/// The admin API against the sample (SQLite ledger, a clock that stands still at <see cref="AdminTestKit.Start"/>):
/// every endpoint's answer exactly, its effect on real MCP calls, refusals of bad input that change nothing, and the audit log.
/// </summary>
public sealed class AdminApiTests : IAsyncLifetime
{
    private GuardedHost _host = null!;

    public async Task InitializeAsync() => _host = await StartSampleAsync();

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private IEnumerable<LogEntry> Audit => _host.Logs.Entries.Where(e => e.Category == "McpGuard.Admin");

    [Fact]
    public async Task A_top_up_answers_its_ledger_row_and_the_account_and_is_logged()
    {
        using var response = await _host.PostAdminAsync("/admin/accounts/bob/topup", """{"amount_micro": 1000, "note": "invoice 17"}""");

        await AssertJsonAsync(response, HttpStatusCode.OK, new JsonObject
        {
            ["entry"] = Row(3, "bob", "top_up", 1000, 1240, note: "invoice 17"),
            ["account"] = Account("bob", 1240, null, 0, 3),
        });
        using var ledger = await _host.GetAdminAsync("/admin/accounts/bob/ledger");
        await AssertJsonAsync(ledger, HttpStatusCode.OK, Page(null, Row(3, "bob", "top_up", 1000, 1240, note: "invoice 17"), BobSeed()));

        var line = Assert.Single(Audit);
        Assert.Equal(new EventId(7001, "AccountToppedUp"), line.EventId);
        Assert.Equal(LogLevel.Information, line.Level);
        Assert.Equal("Admin (admin key) topped up account bob by 1000 (ledger row 3); balance now 1240.", line.Message);
    }

    [Fact]
    public async Task A_top_up_without_a_note_or_with_unknown_fields_works_and_opens_an_unknown_account()
    {
        using (var response = await _host.PostAdminAsync("/admin/accounts/dave/topup", """{"amount_micro": 5, "currency": "EUR", "extra": {"x": [1]}}"""))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, new JsonObject
            {
                ["entry"] = Row(3, "dave", "top_up", 5, 5),
                ["account"] = Account("dave", 5, null, 0, 0),
            });
        }

        using var account = await _host.GetAdminAsync("/admin/accounts/dave");
        await AssertJsonAsync(account, HttpStatusCode.OK, Account("dave", 5, null, 0, 0));
    }

    [Fact]
    public async Task An_adjustment_moves_the_balance_either_way_but_never_below_zero()
    {
        using (var response = await _host.PostAdminAsync("/admin/accounts/alice/adjust", """{"amount_micro": -250000, "note": "duplicate invoice"}"""))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, new JsonObject
            {
                ["entry"] = Row(3, "alice", "adjustment", -250_000, 750_000, note: "duplicate invoice"),
                ["account"] = Account("alice", 750_000, 2_000_000, 0, 0),
            });
        }

        using (var response = await _host.PostAdminAsync("/admin/accounts/alice/adjust", """{"amount_micro": 1, "note": "rounding"}"""))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, new JsonObject
            {
                ["entry"] = Row(4, "alice", "adjustment", 1, 750_001, note: "rounding"),
                ["account"] = Account("alice", 750_001, 2_000_000, 0, 0),
            });
        }

        var before = await _host.SnapshotAsync("/admin/accounts/alice/ledger");
        using (var response = await _host.PostAdminAsync("/admin/accounts/alice/adjust", """{"amount_micro": -750002, "note": "too much"}"""))
        {
            await AssertProblemAsync(response, HttpStatusCode.Conflict, "Conflict",
                "An adjustment of -750002 would take account 'alice' below zero (balance 750001).");
        }

        Assert.Equal(before, await _host.SnapshotAsync("/admin/accounts/alice/ledger"));
        using (var response = await _host.PostAdminAsync("/admin/accounts/zed/adjust", """{"amount_micro": 5, "note": "who?"}"""))
        {
            await AssertProblemAsync(response, HttpStatusCode.NotFound, "Not Found", "Unknown account 'zed'.");
        }

        Assert.Equal(
            [
                "Admin (admin key) adjusted account alice by -250000 (ledger row 3); balance now 750000. Note: duplicate invoice",
                "Admin (admin key) adjusted account alice by 1 (ledger row 4); balance now 750001. Note: rounding",
            ],
            Audit.Select(e => e.Message));
        Assert.All(Audit, e => Assert.Equal(new EventId(7002, "AccountAdjusted"), e.EventId));
    }

    [Fact]
    public async Task An_account_shows_balance_cap_spend_free_calls_and_status_and_an_unknown_one_is_404()
    {
        using (var response = await _host.GetAdminAsync("/admin/accounts/alice"))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, Account("alice", 1_000_000, 2_000_000, 0, 0));
        }

        using (var response = await _host.GetAdminAsync("/admin/accounts/bob"))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, Account("bob", 240, null, 0, 3));
        }

        using (var response = await _host.GetAdminAsync("/admin/accounts/carol"))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, Account("carol", 0, null, 0, 0, "suspended"));
        }

        using (var response = await _host.GetAdminAsync("/admin/accounts/zed"))
        {
            await AssertProblemAsync(response, HttpStatusCode.NotFound, "Not Found", "Unknown account 'zed'.");
        }

        using (var response = await _host.GetAdminAsync("/admin/accounts/zed/ledger"))
        {
            await AssertProblemAsync(response, HttpStatusCode.NotFound, "Not Found", "Unknown account 'zed'.");
        }
    }

    [Fact]
    public async Task A_cap_is_set_cleared_and_enforced_on_the_next_priced_call()
    {
        using (var response = await _host.SendAsync(HttpMethod.Put, "/admin/accounts/alice/cap", """{"monthly_cap_micro": 700}"""))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, Account("alice", 1_000_000, 700, 0, 0));
        }

        // add costs 800: over the new cap.
        using (var response = await _host.CallToolAsync(DemoKeys.Alice, "add", new { a = 1, b = 2 }, "alice-capped"))
        {
            await AssertJsonRpcRefusalAsync(response, HttpStatusCode.PaymentRequired, -31302, "Monthly spending cap reached", "cap_reached", "alice-capped",
                data: new JsonObject { ["cap_micro"] = 700, ["spent_micro"] = 0, ["price_micro"] = 800, ["resets_at"] = "2026-06-01T00:00:00Z" });
        }

        using (var response = await _host.SendAsync(HttpMethod.Put, "/admin/accounts/alice/cap", """{"monthly_cap_micro": null}"""))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, Account("alice", 1_000_000, null, 0, 0));
        }

        using (var response = await _host.CallToolAsync(DemoKeys.Alice, "add", new { a = 1, b = 2 }, "alice-uncapped"))
        {
            await AssertToolTextAsync(response, "3");
            Assert.Equal("800", Header(response, "McpGuard-Charge-Micro"));
        }

        using (var response = await _host.SendAsync(HttpMethod.Put, "/admin/accounts/zed/cap", """{"monthly_cap_micro": 5}"""))
        {
            await AssertProblemAsync(response, HttpStatusCode.NotFound, "Not Found", "Unknown account 'zed'.");
        }

        Assert.Equal(
            [
                "Admin (admin key) set account alice's monthly cap to 700 (was 2000000).",
                "Admin (admin key) set account alice's monthly cap to none (was 700).",
            ],
            Audit.Select(e => e.Message));
        Assert.All(Audit, e => Assert.Equal(new EventId(7003, "MonthlyCapSet"), e.EventId));
    }

    [Fact]
    public async Task Bob_uses_his_free_calls_runs_out_of_credit_is_topped_up_and_is_charged()
    {
        for (var call = 1; call <= 3; call++)
        {
            using var free = await _host.CallToolAsync(DemoKeys.Bob, "add", new { a = 1, b = 2 }, $"bob-{call}", id: call);
            await AssertToolTextAsync(free, "3", id: call);
            Assert.Equal("0", Header(free, "McpGuard-Charge-Micro"));
            Assert.Equal("240", Header(free, "McpGuard-Balance-Micro"));
        }

        using (var refused = await _host.CallToolAsync(DemoKeys.Bob, "add", new { a = 1, b = 2 }, "bob-4", id: 4))
        {
            // The sample gives out_of_credit the code -32402.
            await AssertJsonRpcRefusalAsync(refused, HttpStatusCode.PaymentRequired, -32402, "Insufficient credit", "out_of_credit", "bob-4", id: 4,
                data: new JsonObject { ["balance_micro"] = 240, ["price_micro"] = 800, ["topup_url"] = TopUpUrl });
        }

        using (var topUp = await _host.PostAdminAsync("/admin/accounts/bob/topup", """{"amount_micro": 1000, "note": "card payment"}"""))
        {
            await AssertJsonAsync(topUp, HttpStatusCode.OK, new JsonObject
            {
                ["entry"] = Row(6, "bob", "top_up", 1000, 1240, note: "card payment"),
                ["account"] = Account("bob", 1240, null, 0, 0),
            });
        }

        using (var charged = await _host.CallToolAsync(DemoKeys.Bob, "add", new { a = 1, b = 2 }, "bob-5", id: 5))
        {
            await AssertToolTextAsync(charged, "3", id: 5);
            Assert.Equal("800", Header(charged, "McpGuard-Charge-Micro"));
            Assert.Equal("440", Header(charged, "McpGuard-Balance-Micro"));
        }

        using (var account = await _host.GetAdminAsync("/admin/accounts/bob"))
        {
            await AssertJsonAsync(account, HttpStatusCode.OK, Account("bob", 440, null, 800, 0));
        }

        using var ledger = await _host.GetAdminAsync("/admin/accounts/bob/ledger");
        await AssertJsonAsync(ledger, HttpStatusCode.OK, Page(
            null,
            Row(7, "bob", "usage", -800, 440, "add", "bob-5"),
            Row(6, "bob", "top_up", 1000, 1240, note: "card payment"),
            Row(5, "bob", "usage", 0, 240, "add", "bob-3", free: true),
            Row(4, "bob", "usage", 0, 240, "add", "bob-2", free: true),
            Row(3, "bob", "usage", 0, 240, "add", "bob-1", free: true),
            BobSeed()));
    }

    [Fact]
    public async Task A_crashed_call_shows_a_usage_row_then_a_refund_row_for_the_same_request()
    {
        using (var response = await _host.CallToolAsync(DemoKeys.Alice, "fail", new { kind = "crash" }, "alice-crash"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var result = (await Sse.ReadSingleMessageAsync(response)).GetProperty("result");
            Assert.True(result.GetProperty("isError").GetBoolean());
            Assert.Equal("internal_error", result.GetProperty("structuredContent").GetProperty("reason").GetString());
        }

        using (var ledger = await _host.GetAdminAsync("/admin/accounts/alice/ledger"))
        {
            await AssertJsonAsync(ledger, HttpStatusCode.OK, Page(
                null,
                Row(4, "alice", "refund", 100, 1_000_000, "fail", "alice-crash"),
                Row(3, "alice", "usage", -100, 999_900, "fail", "alice-crash"),
                AliceSeed()));
        }

        using var account = await _host.GetAdminAsync("/admin/accounts/alice");
        await AssertJsonAsync(account, HttpStatusCode.OK, Account("alice", 1_000_000, 2_000_000, 0, 0));
    }

    [Fact]
    public async Task The_ledger_pages_newest_first_with_a_cursor_that_is_null_at_the_end()
    {
        for (var amount = 1; amount <= 5; amount++)
        {
            using var topUp = await _host.PostAdminAsync("/admin/accounts/alice/topup", $$"""{"amount_micro": {{amount}}}""");
            Assert.Equal(HttpStatusCode.OK, topUp.StatusCode);
        }

        // Rows: 1 alice seed, 2 bob seed, 3..7 alice's top-ups of 1..5.
        JsonObject TopUp(long id) => Row(id, "alice", "top_up", id - 2, 1_000_000 + ((id - 2) * (id - 1) / 2));

        using (var first = await _host.GetAdminAsync("/admin/accounts/alice/ledger?limit=2"))
        {
            await AssertJsonAsync(first, HttpStatusCode.OK, Page(6, TopUp(7), TopUp(6)));
        }

        using (var second = await _host.GetAdminAsync("/admin/accounts/alice/ledger?limit=2&before=6"))
        {
            await AssertJsonAsync(second, HttpStatusCode.OK, Page(4, TopUp(5), TopUp(4)));
        }

        using (var last = await _host.GetAdminAsync("/admin/accounts/alice/ledger?limit=2&before=4"))
        {
            await AssertJsonAsync(last, HttpStatusCode.OK, Page(null, TopUp(3), AliceSeed()));
        }

        using (var exact = await _host.GetAdminAsync("/admin/accounts/alice/ledger?limit=6"))
        {
            await AssertJsonAsync(exact, HttpStatusCode.OK, Page(null, TopUp(7), TopUp(6), TopUp(5), TopUp(4), TopUp(3), AliceSeed()));
        }

        using (var all = await _host.GetAdminAsync("/admin/accounts/alice/ledger?limit=500"))
        {
            await AssertJsonAsync(all, HttpStatusCode.OK, Page(null, TopUp(7), TopUp(6), TopUp(5), TopUp(4), TopUp(3), AliceSeed()));
        }

        using var beyond = await _host.GetAdminAsync("/admin/accounts/alice/ledger?before=1");
        await AssertJsonAsync(beyond, HttpStatusCode.OK, Page(null));
    }

    [Fact]
    public async Task A_created_key_works_at_once_and_stops_working_when_revoked()
    {
        string key;
        using (var response = await _host.PostAdminAsync("/admin/keys", """{"account": "bob", "scopes": ["tools:basic", "tools:basic"], "id": "bob-cli"}"""))
        {
            key = JsonNode.Parse(await response.Content.ReadAsStringAsync())!["key"]!.GetValue<string>();
            Assert.Matches("^mcpg_[A-Za-z0-9_-]{43}$", key);
            await AssertJsonAsync(response, HttpStatusCode.Created, new JsonObject
            {
                ["id"] = "bob-cli",
                ["key"] = key,
                ["account"] = "bob",
                ["scopes"] = new JsonArray("tools:basic"),
                ["expires_at"] = null,
            });
        }

        using (var call = await _host.PostMcpAsync(Echo("new key"), apiKey: key))
        {
            await AssertToolTextAsync(call, "new key");
        }

        // The key's scopes hold: premium_report needs tools:premium.
        using (var call = await _host.PostMcpAsync(PremiumReport(), apiKey: key))
        {
            await AssertJsonRpcErrorAsync(call, HttpStatusCode.Forbidden,
                $"Bearer error=\"insufficient_scope\", scope=\"tools:premium\", resource_metadata=\"{MetadataUrl}\"",
                -31103, "Insufficient scope: this call needs tools:premium.", "insufficient_scope", scope: "tools:premium");
        }

        using (var revoke = await _host.PostAdminAsync("/admin/keys/bob-cli/revoke"))
        {
            await AssertJsonAsync(revoke, HttpStatusCode.OK, new JsonObject { ["id"] = "bob-cli", ["revoked"] = true });
        }

        using (var call = await _host.PostMcpAsync(Echo("revoked"), apiKey: key))
        {
            await AssertJsonRpcErrorAsync(call, HttpStatusCode.Unauthorized,
                $"Bearer error=\"invalid_token\", error_description=\"invalid or expired API key\", resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"",
                -31102, InvalidKeyMessage, "invalid_token");
        }

        Assert.Equal(
            [
                (new EventId(7006, "KeyCreated"), "Admin (admin key) created API key bob-cli for account bob with scopes 'tools:basic', expiring never."),
                (new EventId(7007, "KeyRevoked"), "Admin (admin key) revoked API key bob-cli."),
            ],
            Audit.Select(e => (e.EventId, e.Message)));
        Assert.All(_host.Logs.Entries, e => Assert.DoesNotContain(key, e.FullText, StringComparison.Ordinal));
        Assert.All(_host.Logs.Entries, e => Assert.DoesNotContain(key[5..], e.FullText, StringComparison.Ordinal));
        Assert.All(_host.Logs.Entries, e => Assert.DoesNotContain(AdminKey, e.FullText, StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_key_gets_a_generated_id_an_expiry_in_utc_and_a_charge_on_its_account()
    {
        JsonNode body;
        using (var response = await _host.PostAdminAsync("/admin/keys", """{"account": "alice", "scopes": ["tools:basic"], "expires_at": "2026-05-09T15:00:00+02:00"}"""))
        {
            var text = await response.Content.ReadAsStringAsync();
            body = JsonNode.Parse(text)!;
            var id = body["id"]!.GetValue<string>();
            Assert.Matches("^key_[0-9a-f]{16}$", id);
            await AssertJsonAsync(response, HttpStatusCode.Created, new JsonObject
            {
                ["id"] = id,
                ["key"] = body["key"]!.GetValue<string>(),
                ["account"] = "alice",
                ["scopes"] = new JsonArray("tools:basic"),
                ["expires_at"] = "2026-05-09T13:00:00Z",
            });
        }

        using (var call = await _host.CallToolAsync(body["key"]!.GetValue<string>(), "add", new { a = 2, b = 2 }, "alice-new-key"))
        {
            await AssertToolTextAsync(call, "4");
            Assert.Equal("800", Header(call, "McpGuard-Charge-Micro"));
            Assert.Equal("999200", Header(call, "McpGuard-Balance-Micro"));
        }
    }

    [Fact]
    public async Task Key_ids_that_are_taken_or_unknown_are_refused()
    {
        using (var response = await _host.PostAdminAsync("/admin/keys", """{"account": "bob", "scopes": [], "id": "demo-alice"}"""))
        {
            await AssertProblemAsync(response, HttpStatusCode.Conflict, "Conflict", "Key id 'demo-alice' is taken by a key in configuration (McpGuard:Auth:ApiKeys:Keys).");
        }

        using (var response = await _host.PostAdminAsync("/admin/keys", """{"account": "bob", "scopes": [], "id": "twice"}"""))
        {
            Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        }

        using (var response = await _host.PostAdminAsync("/admin/keys", """{"account": "alice", "scopes": [], "id": "twice"}"""))
        {
            await AssertProblemAsync(response, HttpStatusCode.Conflict, "Conflict", "Key id 'twice' is taken by a key created earlier.");
        }

        using (var response = await _host.PostAdminAsync("/admin/keys/nope/revoke"))
        {
            await AssertProblemAsync(response, HttpStatusCode.NotFound, "Not Found", "Unknown key 'nope'.");
        }

        using (var response = await _host.PostAdminAsync("/admin/keys/demo-alice/revoke"))
        {
            await AssertProblemAsync(response, HttpStatusCode.Conflict, "Conflict",
                "Key 'demo-alice' comes from configuration; set Revoked to true on it in McpGuard:Auth:ApiKeys:Keys.");
        }

        // The configured key still works.
        using var call = await _host.PostMcpAsync(Echo("still here"), apiKey: DemoKeys.Alice);
        await AssertToolTextAsync(call, "still here");
    }

    [Fact]
    public async Task A_paused_tool_gets_503_an_archived_one_410_and_a_restored_one_works()
    {
        using (var response = await _host.PostAdminAsync("/admin/tools/add/pause"))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, new JsonObject { ["tool"] = "add", ["status"] = "paused" });
        }

        using (var call = await _host.CallToolAsync(DemoKeys.Alice, "add", new { a = 1, b = 1 }, "paused-1"))
        {
            await AssertJsonRpcRefusalAsync(call, HttpStatusCode.ServiceUnavailable, -31401, "Tool paused: 'add' is paused by its publisher.", "tool_paused", "paused-1",
                data: new JsonObject { ["tool"] = "add" });
        }

        using (var response = await _host.PostAdminAsync("/admin/tools/add/archive"))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, new JsonObject { ["tool"] = "add", ["status"] = "archived" });
        }

        using (var call = await _host.CallToolAsync(DemoKeys.Alice, "add", new { a = 1, b = 1 }, "archived-1"))
        {
            await AssertJsonRpcRefusalAsync(call, HttpStatusCode.Gone, -31402, "Tool archived: 'add' is no longer offered.", "tool_archived", "archived-1",
                data: new JsonObject { ["tool"] = "add" });
        }

        using (var response = await _host.PostAdminAsync("/admin/tools/add/restore"))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, new JsonObject { ["tool"] = "add", ["status"] = "live" });
        }

        using (var call = await _host.CallToolAsync(DemoKeys.Alice, "add", new { a = 1, b = 1 }, "restored-1"))
        {
            await AssertToolTextAsync(call, "2");
        }

        // Refused calls were never charged: only the restored call is in the ledger.
        using (var ledger = await _host.GetAdminAsync("/admin/accounts/alice/ledger"))
        {
            await AssertJsonAsync(ledger, HttpStatusCode.OK, Page(null, Row(3, "alice", "usage", -800, 999_200, "add", "restored-1"), AliceSeed()));
        }

        using (var response = await _host.PostAdminAsync("/admin/tools/no_such_tool/pause"))
        {
            await AssertProblemAsync(response, HttpStatusCode.NotFound, "Not Found", "Unknown tool 'no_such_tool': list it under McpGuard:Tools to manage its status.");
        }

        Assert.Equal(
            [
                "Admin (admin key) set tool add to paused (override).",
                "Admin (admin key) set tool add to archived (override).",
                "Admin (admin key) set tool add to live (restored to configuration).",
            ],
            Audit.Select(e => e.Message));
        Assert.All(Audit, e => Assert.Equal(new EventId(7008, "ToolStatusSet"), e.EventId));
    }

    [Fact]
    public async Task A_suspended_account_gets_403_until_reactivated()
    {
        using (var response = await _host.PostAdminAsync("/admin/accounts/bob/suspend"))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, Account("bob", 240, null, 0, 3, "suspended"));
        }

        using (var call = await _host.CallToolAsync(DemoKeys.Bob, "echo", new { message = "hi" }, "bob-suspended"))
        {
            await AssertJsonRpcRefusalAsync(call, HttpStatusCode.Forbidden, -31104, "Account suspended: contact the server's operator.", "suspended", "bob-suspended");
        }

        using (var response = await _host.PostAdminAsync("/admin/accounts/bob/reactivate"))
        {
            await AssertJsonAsync(response, HttpStatusCode.OK, Account("bob", 240, null, 0, 3));
        }

        using (var call = await _host.CallToolAsync(DemoKeys.Bob, "echo", new { message = "back" }, "bob-back"))
        {
            await AssertToolTextAsync(call, "back");
        }

        using (var response = await _host.PostAdminAsync("/admin/accounts/zed/suspend"))
        {
            await AssertProblemAsync(response, HttpStatusCode.NotFound, "Not Found", "Unknown account 'zed'.");
        }

        Assert.Equal(
            [
                (new EventId(7004, "AccountSuspended"), "Admin (admin key) suspended account bob."),
                (new EventId(7005, "AccountReactivated"), "Admin (admin key) reactivated account bob."),
            ],
            Audit.Select(e => (e.EventId, e.Message)));
    }

    [Fact]
    public async Task An_account_suspended_in_configuration_cannot_be_reactivated_through_the_api()
    {
        using (var response = await _host.PostAdminAsync("/admin/accounts/carol/reactivate"))
        {
            await AssertProblemAsync(response, HttpStatusCode.Conflict, "Conflict",
                "Account 'carol' is suspended by configuration (McpGuard:Accounts:carol:Suspended); set it to false there to reactivate the account.");
        }

        using (var account = await _host.GetAdminAsync("/admin/accounts/carol"))
        {
            await AssertJsonAsync(account, HttpStatusCode.OK, Account("carol", 0, null, 0, 0, "suspended"));
        }

        using var call = await _host.CallToolAsync(DemoKeys.Carol, "echo", new { message = "hi" }, "carol-1");
        await AssertJsonRpcRefusalAsync(call, HttpStatusCode.Forbidden, -31104, "Account suspended: contact the server's operator.", "suspended", "carol-1");
        Assert.Empty(Audit);
    }

    public static TheoryData<string, string, string, JsonObject> BadMoneyInput() => new()
    {
        { "topup", "{}", "", FieldErrors(("amount_micro", ["Required: a whole number of micro-units greater than 0."])) },
        { "topup", """{"amount_micro": null}""", "", FieldErrors(("amount_micro", ["Required: a whole number of micro-units greater than 0."])) },
        { "topup", """{"amount_micro": 0}""", "", FieldErrors(("amount_micro", ["Must be a whole number of micro-units greater than 0 (got 0)."])) },
        { "topup", """{"amount_micro": -5}""", "", FieldErrors(("amount_micro", ["Must be a whole number of micro-units greater than 0 (got -5)."])) },
        { "topup", """{"amount_micro": "100"}""", "", FieldErrors(("amount_micro", ["Must be a whole number of micro-units greater than 0 (got \"100\")."])) },
        { "topup", """{"amount_micro": 1.5}""", "", FieldErrors(("amount_micro", ["Must be a whole number of micro-units greater than 0 (got 1.5)."])) },
        { "topup", """{"amount_micro": 1e30}""", "", FieldErrors(("amount_micro", ["Must be a whole number of micro-units greater than 0 (got 1e30)."])) },
        { "topup", """{"amount_micro": true, "note": 5}""", "", FieldErrors(
            ("amount_micro", ["Must be a whole number of micro-units greater than 0 (got true)."]),
            ("note", ["Must be a string of at most 500 characters, or null (got 5)."])) },
        { "topup", """{"amount_micro": 10, "note": "NOTE"}""".Replace("NOTE", new string('n', 501), StringComparison.Ordinal), "", FieldErrors(
            ("note", [$"Must be a string of at most 500 characters, or null (got \"{new string('n', 40)}…\")."])) },
        { "topup", "{", "", FieldErrors(("body", ["Must be a JSON object: the body is not valid JSON (or repeats a member)."])) },
        { "topup", """{"amount_micro": 5, "amount_micro": 500000}""", "", FieldErrors(("body", ["Must be a JSON object: the body is not valid JSON (or repeats a member)."])) },
        { "topup", "[1000]", "", FieldErrors(("body", ["Must be a JSON object (got an array)."])) },
        { "topup", "1000", "", FieldErrors(("body", ["Must be a JSON object (got 1000)."])) },
        { "topup", "", "", FieldErrors(("body", ["Required: a JSON object."])) },
        { "topup", """{"amount_micro": 5}""", "%20", FieldErrors(("id", ["Must be an account id: 1 to 200 characters, no control characters."])) },
        { "topup", "{", "%09", FieldErrors(
            ("id", ["Must be an account id: 1 to 200 characters, no control characters."]),
            ("body", ["Must be a JSON object: the body is not valid JSON (or repeats a member)."])) },
        { "adjust", "{}", "", FieldErrors(
            ("amount_micro", ["Required: a whole number of micro-units other than 0."]),
            ("note", ["Required: a non-empty string of at most 500 characters saying why."])) },
        { "adjust", """{"amount_micro": 0, "note": "   "}""", "", FieldErrors(
            ("amount_micro", ["Must be a whole number of micro-units other than 0 (got 0)."]),
            ("note", ["Must be a non-empty string of at most 500 characters saying why (got \"   \")."])) },
        { "adjust", """{"amount_micro": -5, "note": ["why"]}""", "", FieldErrors(
            ("note", ["Must be a non-empty string of at most 500 characters saying why (got an array)."])) },
        { "adjust", """{"amount_micro": {"value": 5}, "note": "x"}""", "", FieldErrors(
            ("amount_micro", ["Must be a whole number of micro-units other than 0 (got an object)."])) },
        { "adjust", "nonsense", "", FieldErrors(("body", ["Must be a JSON object: the body is not valid JSON (or repeats a member)."])) },
    };

    [Theory]
    [MemberData(nameof(BadMoneyInput))]
    public async Task Bad_top_ups_and_adjustments_are_400_naming_each_field_and_change_nothing(string action, string body, string account, JsonObject errors)
    {
        var path = $"/admin/accounts/{(account.Length > 0 ? account : "bob")}/{action}";
        var balance = await _host.SnapshotAsync("/admin/accounts/bob");
        var ledger = await _host.SnapshotAsync("/admin/accounts/bob/ledger");

        using (var response = await _host.PostAdminAsync(path, body))
        {
            await AssertInvalidAsync(response, errors);
        }

        Assert.Equal(balance, await _host.SnapshotAsync("/admin/accounts/bob"));
        Assert.Equal(ledger, await _host.SnapshotAsync("/admin/accounts/bob/ledger"));
        Assert.Empty(Audit);
    }

    [Theory]
    [InlineData("{}", "Required: a whole number of micro-units, 0 or more, or null for no cap.")]
    [InlineData("""{"monthly_cap_micro": -1}""", "Must be a whole number of micro-units, 0 or more, or null for no cap (got -1).")]
    [InlineData("""{"monthly_cap_micro": "5000"}""", "Must be a whole number of micro-units, 0 or more, or null for no cap (got \"5000\").")]
    [InlineData("""{"monthly_cap_micro": 5000.5}""", "Must be a whole number of micro-units, 0 or more, or null for no cap (got 5000.5).")]
    public async Task A_bad_cap_is_400_and_changes_nothing(string body, string message)
    {
        var before = await _host.SnapshotAsync("/admin/accounts/alice");

        using (var response = await _host.SendAsync(HttpMethod.Put, "/admin/accounts/alice/cap", body))
        {
            await AssertInvalidAsync(response, FieldErrors(("monthly_cap_micro", [message])));
        }

        Assert.Equal(before, await _host.SnapshotAsync("/admin/accounts/alice"));
        Assert.Contains("\"monthly_cap_micro\":2000000", before, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("limit=0", "limit", "Must be a whole number from 1 to 500 (got '0').")]
    [InlineData("limit=501", "limit", "Must be a whole number from 1 to 500 (got '501').")]
    [InlineData("limit=ten", "limit", "Must be a whole number from 1 to 500 (got 'ten').")]
    [InlineData("limit=-1", "limit", "Must be a whole number from 1 to 500 (got '-1').")]
    [InlineData("limit=", "limit", "Must be a whole number from 1 to 500 (got '').")]
    [InlineData("limit=5&limit=6", "limit", "Must be a whole number from 1 to 500, given once (got it 2 times).")]
    [InlineData("before=0", "before", "Must be a ledger row id from next_cursor (a whole number greater than 0) (got '0').")]
    [InlineData("before=abc", "before", "Must be a ledger row id from next_cursor (a whole number greater than 0) (got 'abc').")]
    public async Task A_bad_ledger_query_is_400(string query, string field, string message)
    {
        using var response = await _host.GetAdminAsync($"/admin/accounts/alice/ledger?{query}");

        await AssertInvalidAsync(response, FieldErrors((field, [message])));
    }

    [Fact]
    public async Task A_bad_ledger_query_names_every_bad_parameter_and_the_account()
    {
        using var response = await _host.GetAdminAsync("/admin/accounts/%01/ledger?limit=0&before=x");

        await AssertInvalidAsync(response, FieldErrors(
            ("id", ["Must be an account id: 1 to 200 characters, no control characters."]),
            ("limit", ["Must be a whole number from 1 to 500 (got '0')."]),
            ("before", ["Must be a ledger row id from next_cursor (a whole number greater than 0) (got 'x')."])));
    }

    [Fact]
    public async Task A_bad_key_request_is_400_naming_every_field_and_creates_nothing()
    {
        using (var response = await _host.PostAdminAsync(
            "/admin/keys", """{"account": "", "scopes": ["a b", "tools:basic", 5, "x,y"], "expires_at": "2020-01-01T00:00:00Z", "id": "bad id"}"""))
        {
            await AssertInvalidAsync(response, FieldErrors(
                ("account", ["Must be an account id: 1 to 200 characters, no control characters (got \"\")."]),
                ("scopes[0]", ["Must be a scope token: printable ASCII without spaces, quotes, backslashes or commas (got \"a b\")."]),
                ("scopes[2]", ["Must be a scope token: printable ASCII without spaces, quotes, backslashes or commas (got 5)."]),
                ("scopes[3]", ["Must be a scope token: printable ASCII without spaces, quotes, backslashes or commas (got \"x,y\")."]),
                ("expires_at", ["Must be a time in the future with a time zone, like 2030-01-01T00:00:00Z, or null (got \"2020-01-01T00:00:00Z\")."]),
                ("id", ["Must be a key id: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, or null (got \"bad id\")."])));
        }

        using (var response = await _host.PostAdminAsync("/admin/keys", """{"scopes": "tools:basic", "expires_at": "2030-01-01T00:00:00", "id": "k1"}"""))
        {
            await AssertInvalidAsync(response, FieldErrors(
                ("account", ["Required: an account id: 1 to 200 characters, no control characters."]),
                ("scopes", ["Must be an array of scope tokens (got \"tools:basic\")."]),
                ("expires_at", ["Must be a time in the future with a time zone, like 2030-01-01T00:00:00Z, or null (got \"2030-01-01T00:00:00\")."])));
        }

        using (var response = await _host.PostAdminAsync("/admin/keys", """{"account": "bob", "id": "k1", "expires_at": 5}"""))
        {
            await AssertInvalidAsync(response, FieldErrors(
                ("scopes", ["Required: an array of scope tokens."]),
                ("expires_at", ["Must be a time in the future with a time zone, like 2030-01-01T00:00:00Z, or null (got 5)."])));
        }

        using (var response = await _host.PostAdminAsync("/admin/keys", "{\"account\": \"bob\""))
        {
            await AssertInvalidAsync(response, FieldErrors(("body", ["Must be a JSON object: the body is not valid JSON (or repeats a member)."])));
        }

        // Nothing was created: the id the refused requests named is still free.
        using var created = await _host.PostAdminAsync("/admin/keys", """{"account": "bob", "scopes": [], "id": "k1"}""");
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal(
            ["Admin (admin key) created API key k1 for account bob with scopes '', expiring never."],
            Audit.Select(e => e.Message));
    }

    [Fact]
    public async Task A_body_that_is_not_json_or_too_large_is_refused_before_it_is_read()
    {
        var before = await _host.SnapshotAsync("/admin/accounts/bob/ledger");

        using (var response = await _host.SendAsync(HttpMethod.Post, "/admin/accounts/bob/topup", """{"amount_micro": 5}""", contentType: "text/plain"))
        {
            await AssertProblemAsync(response, HttpStatusCode.UnsupportedMediaType, "Unsupported Media Type", "Send the body as JSON with 'Content-Type: application/json'.");
        }

        using (var response = await _host.SendAsync(HttpMethod.Post, "/admin/accounts/bob/topup", """{"amount_micro": 5}""", contentType: "application/x-www-form-urlencoded"))
        {
            await AssertProblemAsync(response, HttpStatusCode.UnsupportedMediaType, "Unsupported Media Type", "Send the body as JSON with 'Content-Type: application/json'.");
        }

        using (var response = await _host.PostAdminAsync("/admin/accounts/bob/topup"))
        {
            await AssertProblemAsync(response, HttpStatusCode.UnsupportedMediaType, "Unsupported Media Type", "Send the body as JSON with 'Content-Type: application/json'.");
        }

        var padded = $$"""{"amount_micro": 5, "note": null{{new string(' ', 64 * 1024)}}}""";
        using (var response = await _host.PostAdminAsync("/admin/accounts/bob/topup", padded))
        {
            await AssertProblemAsync(response, HttpStatusCode.RequestEntityTooLarge, "Payload Too Large", "An admin request body is at most 65536 bytes.");
        }

        using (var response = await _host.SendAsync(HttpMethod.Post, "/admin/accounts/bob/topup", """{"amount_micro": 7}""", contentType: "application/json; charset=utf-8"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.NotEqual(before, await _host.SnapshotAsync("/admin/accounts/bob/ledger"));
        Assert.Equal(["Admin (admin key) topped up account bob by 7 (ledger row 3); balance now 247."], Audit.Select(e => e.Message));
    }

    [Fact]
    public async Task The_demo_admin_key_documented_for_the_sample_opens_its_admin_api()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await host.GetAdminAsync("/admin/accounts/bob", key: DemoAdminKey);

        await AssertJsonAsync(response, HttpStatusCode.OK, Account("bob", 240, null, 0, 3));
    }
}
