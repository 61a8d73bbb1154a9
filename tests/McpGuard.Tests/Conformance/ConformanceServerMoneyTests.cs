using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using McpGuard.Tests.Credits;
using McpGuard.Tests.Infrastructure;
using McpGuard.Tests.Integration;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Xunit.Abstractions;

namespace McpGuard.Tests.Conformance;

/// <summary>
/// Issue 16's money rules for multiple round trips (SEP-2322), shown on the conformance server itself: its build output
/// run as a process of its own in mode <c>keys-anonymous</c>, with the tools priced on its command line, and the real
/// C# SDK client on 2026-07-28 sending the conformance account's API key to the stateless endpoint. The SDK client
/// answers each input-required result with its elicitation handler and retries by itself. A priced call answered
/// input-required was not served and is refunded in the same request; the retry that completes is charged once; a
/// URL-elicitation-required error is refunded like any JSON-RPC error. The ledger is read over the admin API.
/// Each test has a server of its own, so a fresh in-memory ledger with only the seed in it.
/// </summary>
public sealed class ConformanceServerMoneyTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string V2026 = "2026-07-28";
    private const string Account = "conformance";
    private const string ApiKey = "mcpg_conformance_key";
    private const string AdminKey = "mcpg_conformance_admin_for_tests";
    private const long Seed = 1_000_000;

    private const string Elicitation = "test_input_required_result_elicitation";
    private const string MultiRound = "test_input_required_result_multi_round";
    private const string UrlElicitation = "test_url_elicitation_required";
    private const long ElicitationPrice = 700;
    private const long MultiRoundPrice = 1_100;
    private const long UrlElicitationPrice = 500;

    private static readonly TimeSpan CallLimit = TimeSpan.FromSeconds(30);
    private static readonly JsonSerializerOptions SnakeCase = new(JsonSerializerDefaults.Web) { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private readonly ConcurrentQueue<ElicitRequestParams> _elicitations = new();
    private ConformanceServer? _server;

    private ConformanceServer Server => _server ?? throw new InvalidOperationException("The server did not start.");

    public async Task InitializeAsync()
    {
        _server = await ConformanceServer.StartAsync("keys-anonymous",
        [
            $"--McpGuard:Tools:{Elicitation}:Price={ElicitationPrice}",
            $"--McpGuard:Tools:{MultiRound}:Price={MultiRoundPrice}",
            $"--McpGuard:Tools:{UrlElicitation}:Price={UrlElicitationPrice}",
            $"--McpGuard:Admin:KeyHash={Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(AdminKey)))}",
        ]);
        output.WriteLine($"conformance server process {_server.ProcessId}: stateless {_server.StatelessEndpoint}");
    }

    public async Task DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
            output.WriteLine(_server.Output);
        }
    }

    [Fact]
    public async Task An_input_required_answer_is_refunded_in_its_request_and_the_completed_retry_is_charged_once()
    {
        await using var client = await ConnectAsync();

        var result = await CallAsync(client, Elicitation);

        AssertText("Hello, Ada!", result);
        var asked = Assert.Single(_elicitations);
        Assert.Equal("form", asked.Mode);
        Assert.Equal("What is your name?", asked.Message);
        Assert.Equal(["name"], asked.RequestedSchema!.Properties.Keys);
        Assert.Equal(["name"], asked.RequestedSchema.Required!);

        // The first call was answered input-required, uncharged; the SDK client retried with the user's answer.
        var calls = ToolCalls(client);
        Assert.Equal(2, calls.Count);
        Assert.All(calls, call => Assert.Equal(HttpStatusCode.OK, call.Status));
        Assert.All(calls, call => Assert.Equal("text/event-stream", call.Response.Content.Headers.ContentType?.MediaType));
        Assert.Null(calls[0].Request!["params"]!["inputResponses"]);
        Assert.Null(calls[0].Header(CreditCalls.ChargeHeader));
        Assert.Null(calls[0].Header(CreditCalls.BalanceHeader));
        WireAssert.JsonEquals("""{"user_name":{"action":"accept","content":{"name":"Ada"}}}""", calls[1].Request!["params"]!["inputResponses"]!.ToJsonString());
        Assert.Null(calls[1].Request!["params"]!["requestState"]);
        Assert.Equal($"{ElicitationPrice}", calls[1].Header(CreditCalls.ChargeHeader));
        Assert.Equal($"{Seed - ElicitationPrice}", calls[1].Header(CreditCalls.BalanceHeader));

        // The refund (row 3) is written before the retry's charge (row 4): within the first request, before its answer went out.
        var (first, retry) = (RequestId(calls[0]), RequestId(calls[1]));
        Assert.NotEqual(first, retry);
        Assert.Equal(
            [
                SeedRow,
                new LedgerRow(2, Account, "usage", -ElicitationPrice, Seed - ElicitationPrice, Elicitation, first, false, null),
                new LedgerRow(3, Account, "refund", ElicitationPrice, Seed, Elicitation, first, false, null),
                new LedgerRow(4, Account, "usage", -ElicitationPrice, Seed - ElicitationPrice, Elicitation, retry, false, null),
            ],
            await LedgerAsync());
        Assert.Equal(new AccountBody(Account, Seed - ElicitationPrice, null, ElicitationPrice, 0, "active"), await AccountAsync());
    }

    [Fact]
    public async Task Two_rounds_of_input_are_two_refunds_and_the_completed_call_is_charged_once()
    {
        await using var client = await ConnectAsync();

        var result = await CallAsync(client, MultiRound);

        AssertText("multi-round-ok", result);
        Assert.Equal(["Step 1: What is your name?", "Step 2: What is your favorite color?"], _elicitations.Select(e => e.Message));

        // Each round carried the answer to the round before and the state the server issued with it.
        var calls = ToolCalls(client);
        Assert.Equal(3, calls.Count);
        Assert.All(calls, call => Assert.Equal(HttpStatusCode.OK, call.Status));
        Assert.Equal(new string?[] { null, "round-1", "round-2" }, calls.Select(c => c.Request!["params"]!["requestState"]?.GetValue<string>()));
        Assert.Null(calls[0].Request!["params"]!["inputResponses"]);
        WireAssert.JsonEquals("""{"step1":{"action":"accept","content":{"name":"Ada"}}}""", calls[1].Request!["params"]!["inputResponses"]!.ToJsonString());
        WireAssert.JsonEquals("""{"step2":{"action":"accept","content":{"color":"teal"}}}""", calls[2].Request!["params"]!["inputResponses"]!.ToJsonString());
        Assert.Equal(new string?[] { null, null, $"{MultiRoundPrice}" }, calls.Select(c => c.Header(CreditCalls.ChargeHeader)));
        Assert.Equal($"{Seed - MultiRoundPrice}", calls[2].Header(CreditCalls.BalanceHeader));

        var ids = calls.Select(RequestId).ToList();
        Assert.Equal(3, ids.Distinct().Count());
        Assert.Equal(
            [
                SeedRow,
                new LedgerRow(2, Account, "usage", -MultiRoundPrice, Seed - MultiRoundPrice, MultiRound, ids[0], false, null),
                new LedgerRow(3, Account, "refund", MultiRoundPrice, Seed, MultiRound, ids[0], false, null),
                new LedgerRow(4, Account, "usage", -MultiRoundPrice, Seed - MultiRoundPrice, MultiRound, ids[1], false, null),
                new LedgerRow(5, Account, "refund", MultiRoundPrice, Seed, MultiRound, ids[1], false, null),
                new LedgerRow(6, Account, "usage", -MultiRoundPrice, Seed - MultiRoundPrice, MultiRound, ids[2], false, null),
            ],
            await LedgerAsync());
        Assert.Equal(new AccountBody(Account, Seed - MultiRoundPrice, null, MultiRoundPrice, 0, "active"), await AccountAsync());
    }

    [Fact]
    public async Task A_url_elicitation_required_error_reaches_the_sdk_client_as_its_exception_and_is_refunded()
    {
        await using var client = await ConnectAsync();

        var failure = await Assert.ThrowsAsync<UrlElicitationRequiredException>(() => CallAsync(client, UrlElicitation));

        Assert.Equal("Request failed (remote): Sign in at the billing portal first.", failure.Message);
        Assert.Equal(McpErrorCode.UrlElicitationRequired, failure.ErrorCode);
        var elicitation = Assert.Single(failure.Elicitations);
        Assert.Equal(("url", "conformance-sign-in", "https://billing.example.com/sign-in", "Sign in to continue."),
            (elicitation.Mode, elicitation.ElicitationId, elicitation.Url, elicitation.Message));
        Assert.Empty(_elicitations);

        // One call, no retry: the error came in a 200 event stream, with no charge.
        var call = Assert.Single(ToolCalls(client));
        Assert.Equal(HttpStatusCode.OK, call.Status);
        Assert.Equal("text/event-stream", call.Response.Content.Headers.ContentType?.MediaType);
        Assert.Null(call.Header(CreditCalls.ChargeHeader));
        Assert.Null(call.Header(CreditCalls.BalanceHeader));

        var id = RequestId(call);
        Assert.Equal(
            [
                SeedRow,
                new LedgerRow(2, Account, "usage", -UrlElicitationPrice, Seed - UrlElicitationPrice, UrlElicitation, id, false, null),
                new LedgerRow(3, Account, "refund", UrlElicitationPrice, Seed, UrlElicitation, id, false, null),
            ],
            await LedgerAsync());
        Assert.Equal(new AccountBody(Account, Seed, null, 0, 0, "active"), await AccountAsync());
    }

    private static LedgerRow SeedRow => new(1, Account, "top_up", Seed, Seed, null, null, false, "seed");

    /// <summary>The SDK client on 2026-07-28 against the stateless endpoint, with the account's key and a user who answers every form.</summary>
    private async Task<RecordedClient> ConnectAsync()
    {
        var options = new McpClientOptions
        {
            ProtocolVersion = V2026,
            Handlers = new McpClientHandlers { ElicitationHandler = AnswerAsync },
        };
        using var limit = new CancellationTokenSource(CallLimit);
        var client = await RecordedClient.ConnectAsync(Server.StatelessEndpoint, ApiKey, options, cancellationToken: limit.Token);
        Assert.Equal(V2026, client.Client.NegotiatedProtocolVersion);
        Assert.Null(client.Client.SessionId);
        return client;
    }

    /// <summary>The user accepts every form: Ada, whose favourite colour is teal.</summary>
    private ValueTask<ElicitResult> AnswerAsync(ElicitRequestParams? request, CancellationToken cancellationToken)
    {
        _elicitations.Enqueue(request!);
        var field = Assert.Single(request!.RequestedSchema!.Properties.Keys);
        var answer = field switch
        {
            "name" => "Ada",
            "color" => "teal",
            _ => throw new InvalidOperationException($"No answer for '{field}'."),
        };
        return ValueTask.FromResult(new ElicitResult
        {
            Action = "accept",
            Content = new Dictionary<string, JsonElement> { [field] = JsonSerializer.SerializeToElement(answer) },
        });
    }

    private static async Task<CallToolResult> CallAsync(RecordedClient client, string tool)
    {
        using var limit = new CancellationTokenSource(CallLimit);
        return await client.Client.CallToolAsync(tool, new Dictionary<string, object?>(), cancellationToken: limit.Token);
    }

    private static List<WireExchange> ToolCalls(RecordedClient client) => [.. client.Wire.Exchanges.Where(e => e.McpMethod == "tools/call")];

    /// <summary>The request id McpGuard gave the exchange (the client sends none).</summary>
    private static string RequestId(WireExchange call)
    {
        var id = call.Header("X-Request-Id")!;
        WireAssert.IsGeneratedRequestId(id);
        return id;
    }

    private static void AssertText(string expected, CallToolResult result)
    {
        Assert.NotEqual(true, result.IsError);
        Assert.Equal(expected, Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text);
    }

    /// <summary>Every row of the account, oldest first, from <c>GET /admin/accounts/conformance/ledger</c> on the stateless server.</summary>
    private async Task<List<LedgerRow>> LedgerAsync()
    {
        var page = await AdminGetAsync<LedgerPage>($"/admin/accounts/{Account}/ledger?limit=500");
        Assert.Null(page.NextCursor);
        return [.. page.Entries.Reverse()];
    }

    private Task<AccountBody> AccountAsync() => AdminGetAsync<AccountBody>($"/admin/accounts/{Account}");

    private async Task<T> AdminGetAsync<T>(string path)
    {
        using var http = new HttpClient { Timeout = CallLimit };
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(Server.StatelessEndpoint, path));
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        using var response = await http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return (await response.Content.ReadFromJsonAsync<T>(SnakeCase))!;
    }

    /// <summary>A ledger row as the admin API shows it, without its timestamp.</summary>
    private sealed record LedgerRow(long Id, string Account, string Kind, long AmountMicro, long BalanceAfterMicro, string? Tool, string? RequestId, bool Free, string? Note);

    private sealed record LedgerPage(LedgerRow[] Entries, long? NextCursor);

    /// <summary>An account as the admin API shows it.</summary>
    private sealed record AccountBody(string Id, long BalanceMicro, long? MonthlyCapMicro, long SpentThisMonthMicro, long FreeCallsLeft, string Status);
}
