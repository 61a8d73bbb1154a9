using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using McpGuard.Telemetry;
using McpGuard.Tests.Docs;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using PuppeteerSharp;
using Xunit.Abstractions;
using static McpGuard.Tests.Admin.AdminTestKit;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Dashboard;

/// <summary>
/// The dashboard in a real browser: Debian's Chromium (<c>/usr/bin/chromium</c>, never a downloaded one), headless, driven
/// by PuppeteerSharp against the sample on Kestrel. An operator signs in with the admin key and works every view; what
/// the page changes is checked with real MCP calls. Screenshots of each view go to <c>TestResults/screenshots</c> in the
/// test output folder; with <c>MCPGUARD_UPDATE_DOCS=1</c> the overview's also becomes <c>docs/images/dashboard.png</c>.
/// </summary>
public sealed class DashboardBrowserTests(ITestOutputHelper output)
{
    /// <summary>Where Debian's <c>chromium</c> package puts the browser (CI installs it: <c>.ci/run</c>).</summary>
    public const string ChromiumPath = "/usr/bin/chromium";

    private static readonly bool UpdateDocs = Environment.GetEnvironmentVariable("MCPGUARD_UPDATE_DOCS") == "1";

    /// <summary>A top-up note with markup that would run if the page ever put a note in as HTML.</summary>
    private const string HostileNote = "invoice 77 <img src=x onerror=\"window.__mcpguardXss=1\">";

    private readonly List<string> _errors = [];

    [Fact]
    public async Task An_operator_tops_up_bob_revokes_a_key_and_pauses_a_tool_from_the_dashboard()
    {
        Assert.True(File.Exists(ChromiumPath),
            $"The dashboard test needs Debian's Chromium at {ChromiumPath}: install it with 'apt-get install -y chromium' (.ci/run does). PuppeteerSharp never downloads a browser here.");
        var started = Stopwatch.StartNew();

        // The sample on a clock the test moves: an hour of traffic and charges, one bucket at a time, for the charts.
        var clock = new FakeTimeProvider(DateTimeOffset.UtcNow.AddMinutes(-55));
        await using var host = await StartSampleAsync(clock);
        await MakeAnHourOfCallsAsync(host, clock);

        var screenshots = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, "TestResults", "screenshots")).FullName;
        await using var browser = await Puppeteer.LaunchAsync(new LaunchOptions
        {
            ExecutablePath = ChromiumPath,
            Headless = true,
            Args = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run", "--disable-extensions"],
            Timeout = 30_000,
        });
        await using var page = await browser.NewPageAsync();
        await page.SetViewportAsync(new ViewPortOptions { Width = 1200, Height = 900 });
        page.DefaultTimeout = 10_000;
        page.Console += (_, e) =>
        {
            output.WriteLine($"console {e.Message.Type}: {e.Message.Text}");
            if (e.Message.Type == ConsoleType.Error)
            {
                _errors.Add(e.Message.Text);
            }
        };
        page.PageError += (_, e) => _errors.Add("page error: " + e.Message);

        // Offline: every request the page makes goes to this server, and none carries the admin key in its URL.
        var offsite = new System.Collections.Concurrent.ConcurrentQueue<string>();
        page.Request += (_, e) =>
        {
            if (!e.Request.Url.StartsWith(host.BaseAddress.ToString(), StringComparison.Ordinal) || e.Request.Url.Contains(AdminKey, StringComparison.Ordinal))
            {
                offsite.Enqueue(e.Request.Url);
            }
        };

        // Sign in with the admin key.
        var response = await page.GoToAsync(new Uri(host.BaseAddress, "/admin/ui").ToString(), WaitUntilNavigation.Load);
        Assert.Equal(HttpStatusCode.OK, response.Status);
        await page.WaitForSelectorAsync("[data-testid=admin-key]", new WaitForSelectorOptions { Visible = true });
        await page.TypeAsync("[data-testid=admin-key]", AdminKey);
        await page.ClickAsync("[data-testid=sign-in-submit]");

        // Overview: the three charts drawn with data.
        await page.WaitForSelectorAsync("[data-testid=chart-money] rect.bar", new WaitForSelectorOptions { Visible = true });
        Assert.True(await BarsWithDataAsync(page, "chart-traffic") >= 10, "the traffic chart has a bar for each bucket with requests");
        Assert.True(await BarsWithDataAsync(page, "chart-refusals") >= 2, "the refusals chart has a bar per reason");
        Assert.True(await BarsWithDataAsync(page, "chart-money") >= 12, "the money chart has charges in every bucket and some refunds");
        Assert.Equal("27", await TextAsync(page, "figure-charged-calls")); // 24 calls of add, 3 crashes (refunded)
        Assert.Equal("19,500", await TextAsync(page, "figure-charged"));
        Assert.Equal("300", await TextAsync(page, "figure-refunded"));
        await ScreenshotAsync(page, screenshots, "overview");

        // The day: 24 hourly buckets, the same money.
        await page.ClickAsync("[data-testid=window-day]");
        await page.WaitForFunctionAsync("() => document.querySelectorAll('[data-testid=chart-money] rect.bar').length === 48");
        Assert.Equal("19,500", await TextAsync(page, "figure-charged"));
        Assert.Equal(48, await page.EvaluateExpressionAsync<int>("document.querySelectorAll('[data-testid=chart-traffic] rect.bar').length"));
        await page.ClickAsync("[data-testid=window-hour]");
        await page.WaitForFunctionAsync("() => document.querySelectorAll('[data-testid=chart-money] rect.bar').length === 24");

        // Accounts: bob's balance, then a top-up.
        await page.ClickAsync("[data-testid=nav-accounts]");
        await page.TypeAsync("[data-testid=account-id]", "bob");
        await page.ClickAsync("[data-testid=account-lookup]");
        await WaitForTextAsync(page, "account-balance", "240");
        Assert.Equal("active", await TextAsync(page, "account-status"));
        Assert.Equal("3", await TextAsync(page, "account-free"));
        await page.TypeAsync("[data-testid=topup-amount]", "10000");
        // A note is text the page shows as text: markup in it is never run.
        await page.TypeAsync("[data-testid=topup-note]", HostileNote);
        await page.ClickAsync("[data-testid=topup-submit]");
        await WaitForTextAsync(page, "account-balance", "10,240");
        var bob = await host.SnapshotAsync("/admin/accounts/bob");
        AssertJsonEqual(Account("bob", 10_240, null, 0, 3), JsonNode.Parse(bob));
        await ScreenshotAsync(page, screenshots, "accounts");

        // A monthly cap, then a suspension that refuses bob's next call, then a reactivation that lets it through again.
        await page.TypeAsync("[data-testid=cap-amount]", "5000");
        await page.ClickAsync("[data-testid=cap-submit]");
        await WaitForTextAsync(page, "accounts-message", "Monthly cap of bob: 5,000.");
        Assert.Equal("5,000", await TextAsync(page, "account-cap"));
        await page.ClickAsync("[data-testid=suspend]");
        await WaitForTextAsync(page, "accounts-message", "bob is suspended.");
        Assert.Equal("suspended", await TextAsync(page, "account-status"));
        using (var call = await host.PostMcpAsync(Echo("suspended"), apiKey: DemoKeys.Bob))
        {
            await WireAssert.JsonRpcErrorAsync(call, HttpStatusCode.Forbidden, -31104, "Account suspended: contact the server's operator.", "suspended", id: 1L);
        }

        await page.ClickAsync("[data-testid=reactivate]");
        await WaitForTextAsync(page, "accounts-message", "bob is active.");
        using (var call = await host.PostMcpAsync(Echo("back"), apiKey: DemoKeys.Bob))
        {
            await AssertToolTextAsync(call, "back");
        }

        AssertJsonEqual(Account("bob", 10_240, 5_000, 0, 3), JsonNode.Parse(await host.SnapshotAsync("/admin/accounts/bob")));

        // Activity: the top-up is the newest row.
        await page.ClickAsync("[data-testid=account-activity]");
        await page.WaitForSelectorAsync("[data-testid=activity-row]");
        var top = await page.EvaluateFunctionAsync<string[]>(
            "() => Array.from(document.querySelector('[data-testid=activity-row]').cells).map(c => c.textContent)");
        Assert.Equal(["top-up", "10,000", "10,240", "", "", HostileNote], top[2..]);
        Assert.True(await page.EvaluateExpressionAsync<bool>("window.__mcpguardXss === undefined"), "markup in a note ran");
        Assert.Equal(0, await page.EvaluateExpressionAsync<int>("document.querySelectorAll('[data-testid=activity-row] img').length"));
        Assert.Equal(2, await page.EvaluateExpressionAsync<int>("document.querySelectorAll('[data-testid=activity-row]').length"));
        await ScreenshotAsync(page, screenshots, "activity");

        // Keys: create one for dave (shown once), use it, revoke it, and see it refused.
        await page.ClickAsync("[data-testid=nav-keys]");
        await page.TypeAsync("[data-testid=key-account]", "dave");
        await page.TypeAsync("[data-testid=key-scopes]", "tools:basic");
        await page.TypeAsync("[data-testid=key-id]", "dave-dashboard");
        await page.ClickAsync("[data-testid=key-create]");
        await page.WaitForSelectorAsync("[data-testid=key-created]", new WaitForSelectorOptions { Visible = true });
        var key = await TextAsync(page, "key-plaintext");
        Assert.Matches("^mcpg_[A-Za-z0-9_-]{43}$", key);
        Assert.Equal("dave-dashboard", await TextAsync(page, "key-created-id"));
        await ScreenshotAsync(page, screenshots, "keys");
        using (var call = await host.PostMcpAsync(Echo("before"), apiKey: key))
        {
            await AssertToolTextAsync(call, "before");
        }

        await page.TypeAsync("[data-testid=revoke-id]", "dave-dashboard");
        await page.ClickAsync("[data-testid=revoke-submit]");
        await WaitForTextAsync(page, "keys-message", "Key dave-dashboard is revoked.");
        Assert.Equal("", await TextAsync(page, "key-plaintext"));
        using (var call = await host.PostMcpAsync(Echo("after"), apiKey: key))
        {
            await AssertJsonRpcErrorAsync(call, HttpStatusCode.Unauthorized, InvalidKeyEchoChallenge, -31102, InvalidKeyMessage, "invalid_token");
        }

        // Tools: pause echo, see a call refused, restore it.
        await page.ClickAsync("[data-testid=nav-tools]");
        await page.WaitForSelectorAsync("[data-testid=tool-pause-echo]");
        Assert.Equal("800", await TextAsync(page, "tool-row-add", 1));
        await page.ClickAsync("[data-testid=tool-pause-echo]");
        await WaitForTextAsync(page, "tool-status-echo", "paused (configured: live)");
        await ScreenshotAsync(page, screenshots, "tools");
        using (var call = await host.PostMcpAsync(Echo("paused"), apiKey: DemoKeys.Alice))
        {
            await WireAssert.JsonRpcErrorAsync(call, HttpStatusCode.ServiceUnavailable, -31401, "Tool paused: 'echo' is paused by its publisher.", "tool_paused", id: 1L,
                extraData: new JsonObject { ["tool"] = "echo" });
        }

        await page.ClickAsync("[data-testid=tool-restore-echo]");
        await WaitForTextAsync(page, "tool-status-echo", "live");
        using (var call = await host.PostMcpAsync(Echo("restored"), apiKey: DemoKeys.Alice))
        {
            await AssertToolTextAsync(call, "restored");
        }

        Assert.Empty(_errors);

        // A refused action shows the problem's detail. (Chromium logs the refused fetch itself as a console error, so this
        // comes after the check above, and that record is the only new one.)
        await page.ClickAsync("[data-testid=nav-accounts]");
        await page.EvaluateExpressionAsync("document.querySelector('[data-testid=account-id]').value = ''");
        await page.TypeAsync("[data-testid=account-id]", "nobody");
        await page.ClickAsync("[data-testid=account-lookup]");
        await WaitForTextAsync(page, "accounts-message", "Unknown account 'nobody'.");
        Assert.True(await page.EvaluateExpressionAsync<bool>("document.querySelector('[data-testid=account-card]').hidden"));
        await page.EvaluateExpressionAsync("document.querySelector('[data-testid=account-id]').value = ''");
        await page.TypeAsync("[data-testid=account-id]", "bob");
        await page.ClickAsync("[data-testid=account-lookup]");
        await page.WaitForSelectorAsync("[data-testid=account-card]", new WaitForSelectorOptions { Visible = true });
        Assert.Equal("10,240", await TextAsync(page, "account-balance"));
        await page.TypeAsync("[data-testid=topup-amount]", "-5");
        await page.ClickAsync("[data-testid=topup-submit]");
        await WaitForTextAsync(page, "accounts-message",
            "See errors for what is wrong with each field; nothing was changed. amount_micro: Must be a whole number of micro-units greater than 0 (got -5).");
        Assert.All(_errors, e => Assert.StartsWith("Failed to load resource: the server responded with a status of 4", e, StringComparison.Ordinal));

        // Signing out forgets the key (and a key plaintext shown in this tab), and the page asks for the key again.
        await page.ClickAsync("[data-testid=sign-out]");
        await page.WaitForSelectorAsync("[data-testid=admin-key]", new WaitForSelectorOptions { Visible = true });
        Assert.Equal(0, await page.EvaluateExpressionAsync<int>("sessionStorage.length"));
        Assert.Equal("", await TextAsync(page, "key-plaintext"));
        Assert.Empty(offsite);
        output.WriteLine($"The browser test took {started.Elapsed.TotalSeconds:0.0} s; screenshots in {screenshots}.");
        if (UpdateDocs)
        {
            var images = Directory.CreateDirectory(Path.Combine(DocsTranscriptTests.RepositoryRoot(), "docs", "images")).FullName;
            File.Copy(Path.Combine(screenshots, "overview.png"), Path.Combine(images, "dashboard.png"), overwrite: true);
        }
    }

    /// <summary>
    /// Twelve buckets of five minutes: in each, one to three charged calls of add by Alice, a refunded crash every fourth,
    /// and refusals (Bob's premium_report, a revoked key). The pipeline counts each request in <see cref="RecentTraffic"/>
    /// when it ends, which may be just after the client read the answer: each call waits for its count before the clock moves on.
    /// </summary>
    private static async Task MakeAnHourOfCallsAsync(GuardedHost host, FakeTimeProvider clock)
    {
        var traffic = host.Services.GetRequiredService<RecentTraffic>();
        var id = 0;
        for (var bucket = 0; bucket < 12; bucket++)
        {
            for (var i = 0; i <= bucket % 3; i++)
            {
                await CallAsync(DemoKeys.Alice, "add", new { a = 2, b = 3 }, HttpStatusCode.OK, "passed");
            }

            if (bucket % 4 == 1)
            {
                await CallAsync(DemoKeys.Alice, "fail", new { kind = "crash" }, HttpStatusCode.OK, "passed");
            }

            if (bucket % 2 == 0)
            {
                await CallAsync(DemoKeys.Bob, "premium_report", new { topic = "tea" }, HttpStatusCode.Forbidden, "insufficient_scope");
            }

            if (bucket % 5 == 3)
            {
                await CallAsync(DemoKeys.Revoked, "echo", new { message = "hi" }, HttpStatusCode.Unauthorized, "invalid_token");
            }

            if (bucket < 11)
            {
                clock.Advance(TimeSpan.FromMinutes(5));
            }
        }

        async Task CallAsync(string key, string tool, object arguments, HttpStatusCode status, string outcome)
        {
            var before = traffic.Snapshot(TimeSpan.FromHours(1), TimeSpan.FromMinutes(5)).Totals.GetValueOrDefault(new TrafficKey("tools/call", tool, outcome));
            using var response = await host.CallToolAsync(key, tool, arguments, $"dash-{++id}");
            Assert.Equal(status, response.StatusCode);
            await response.Content.ReadAsStringAsync();
            for (var wait = 0; wait < 200 && Counted() == before; wait++)
            {
                await Task.Delay(25);
            }

            Assert.Equal(before + 1, Counted());

            long Counted() => traffic.Snapshot(TimeSpan.FromHours(1), TimeSpan.FromMinutes(5)).Totals.GetValueOrDefault(new TrafficKey("tools/call", tool, outcome));
        }
    }

    private static Task<int> BarsWithDataAsync(IPage page, string chart) =>
        page.EvaluateExpressionAsync<int>(
            $"Array.from(document.querySelectorAll('[data-testid={chart}] rect.bar')).filter(r => Number(r.getAttribute('data-value')) > 0 && Number(r.getAttribute('height')) > 0).length");

    private static Task<string> TextAsync(IPage page, string testId) =>
        page.EvaluateExpressionAsync<string>($"document.querySelector('[data-testid=\"{testId}\"]').textContent");

    /// <summary>The text of one cell of a table row.</summary>
    private static Task<string> TextAsync(IPage page, string rowTestId, int cell) =>
        page.EvaluateExpressionAsync<string>($"document.querySelector('[data-testid=\"{rowTestId}\"]').cells[{cell}].textContent");

    private static Task WaitForTextAsync(IPage page, string testId, string text) =>
        page.WaitForFunctionAsync(
            $"() => document.querySelector('[data-testid=\"{testId}\"]')?.textContent === {System.Text.Json.JsonSerializer.Serialize(text)}",
            new WaitForFunctionOptions { Timeout = 10_000 });

    private async Task ScreenshotAsync(IPage page, string folder, string view)
    {
        var path = Path.Combine(folder, view + ".png");
        await page.ScreenshotAsync(path, new ScreenshotOptions { FullPage = true });
        output.WriteLine($"screenshot: {path}");
    }
}
