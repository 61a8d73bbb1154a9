using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using static McpGuard.Tests.Admin.AdminTestKit;

namespace McpGuard.Tests.Admin;

/// <summary>
/// Bodies no honest client sends: text that is not text (invalid UTF-8, an unpaired surrogate escape), wrong types,
/// cut-off JSON, deep nesting, huge numbers, repeated members. Each is a 400 problem+json naming the field, and
/// nothing changes: no ledger row, no key, no audit line, nothing logged at Error.
/// </summary>
public sealed class AdminHostileInputTests : IAsyncLifetime
{
    private const string InvalidText = "Must hold only valid text: UTF-8, with no unpaired surrogate escape such as \\ud800.";
    private const string BadMemberName = "Must be a JSON object whose member names are valid text: UTF-8, with no unpaired surrogate escape such as \\ud800.";
    private const string NotJson = "Must be a JSON object: the body is not valid JSON (or repeats a member).";

    /// <summary>Bytes that are not UTF-8: a lead byte followed by a byte that cannot continue it.</summary>
    private const string InvalidUtf8 = "\u00c3\u0028";

    private GuardedHost _host = null!;

    public async Task InitializeAsync() => _host = await StartSampleAsync();

    public async Task DisposeAsync() => await _host.DisposeAsync();

    public static TheoryData<string, string, string, JsonObject> UnpairedSurrogates() => new()
    {
        { "/admin/accounts/bob/topup", """{"amount_micro": 5, "note": "\ud800"}""", "POST", FieldErrors(("note", [InvalidText])) },
        { "/admin/accounts/bob/topup", """{"amount_micro": 5, "note": "tail \udfff"}""", "POST", FieldErrors(("note", [InvalidText])) },
        { "/admin/accounts/bob/topup", """{"amount_micro": 5, "note": "reversed \udc00\ud800"}""", "POST", FieldErrors(("note", [InvalidText])) },
        { "/admin/accounts/bob/adjust", """{"amount_micro": -5, "note": "\ud83d"}""", "POST", FieldErrors(("note", [InvalidText])) },
        { "/admin/keys", """{"account": "b\ud800ob", "scopes": ["tools:basic"]}""", "POST", FieldErrors(("account", [InvalidText])) },
        { "/admin/keys", """{"account": "bob", "scopes": ["tools:basic", "\ud800"]}""", "POST", FieldErrors(("scopes[1]", [InvalidText])) },
        { "/admin/keys", """{"account": "bob", "scopes": "\ud800"}""", "POST", FieldErrors(("scopes", [InvalidText])) },
        { "/admin/keys", """{"account": "bob", "scopes": [], "id": "k\udbff"}""", "POST", FieldErrors(("id", [InvalidText])) },
        { "/admin/keys", """{"account": "bob", "scopes": [], "expires_at": "2030-01-01T00:00:00Z\ud800"}""", "POST", FieldErrors(("expires_at", [InvalidText])) },
        { "/admin/accounts/bob/cap", """{"monthly_cap_micro": "\ud800"}""", "PUT", FieldErrors(("monthly_cap_micro", [InvalidText])) },
        // A field the endpoint does not read, at any depth, and a member name.
        { "/admin/accounts/bob/topup", """{"amount_micro": 5, "extra": {"deep": ["ok", {"x": "\ud800"}]}}""", "POST", FieldErrors(("extra", [InvalidText])) },
        { "/admin/accounts/bob/topup", """{"amount_micro": 5, "\ud800": 1}""", "POST", FieldErrors(("body", [BadMemberName])) },
        { "/admin/accounts/bob/topup", """{"amount_micro": 5, "\ud800": 1, "\udc00": 2}""", "POST", FieldErrors(("body", [BadMemberName])) },
        { "/admin/accounts/bob/topup", """{"amount_micro": 5, "nested": {"\ud800": 1, "\udc00": 2}}""", "POST", FieldErrors(("body", [BadMemberName])) },
        // Every bad field at once, with the others' problems too.
        { "/admin/keys", """{"account": "\ud800", "scopes": ["a b", "\udc00"], "id": "\ud800", "expires_at": 5}""", "POST", FieldErrors(
            ("account", [InvalidText]),
            ("scopes[1]", [InvalidText]),
            ("id", [InvalidText]),
            ("scopes[0]", ["Must be a scope token: printable ASCII without spaces, quotes, backslashes or commas (got \"a b\")."]),
            ("expires_at", ["Must be a time in the future with a time zone, like 2030-01-01T00:00:00Z, or null (got 5)."])) },
        { "/admin/accounts/bob/topup", "\"\\ud800\"", "POST", FieldErrors(("body", ["Must be a JSON object (got a string that is not valid text)."])) },
    };

    [Theory]
    [MemberData(nameof(UnpairedSurrogates))]
    public async Task An_unpaired_surrogate_escape_anywhere_is_400_naming_the_field_and_changes_nothing(string path, string body, string method, JsonObject errors)
    {
        await AssertRefusedAndNothingChangedAsync(() => SendBytesAsync(new HttpMethod(method), path, Encoding.UTF8.GetBytes(body)), errors);
    }

    public static TheoryData<string, string, string, JsonObject> InvalidUtf8Bodies() => new()
    {
        { "/admin/accounts/bob/topup", """{"amount_micro": 5, "note": "X"}""", "POST", FieldErrors(("note", [InvalidText])) },
        { "/admin/accounts/bob/adjust", """{"amount_micro": -5, "note": "why X"}""", "POST", FieldErrors(("note", [InvalidText])) },
        { "/admin/keys", """{"account": "X", "scopes": []}""", "POST", FieldErrors(("account", [InvalidText])) },
        { "/admin/keys", """{"account": "bob", "scopes": ["X"]}""", "POST", FieldErrors(("scopes[0]", [InvalidText])) },
        { "/admin/keys", """{"account": "bob", "scopes": [], "id": "X"}""", "POST", FieldErrors(("id", [InvalidText])) },
        { "/admin/keys", """{"account": "bob", "scopes": [], "expires_at": "2030-X"}""", "POST", FieldErrors(("expires_at", [InvalidText])) },
        { "/admin/accounts/bob/topup", """{"amount_micro": 5, "X": true}""", "POST", FieldErrors(("body", [BadMemberName])) },
        { "/admin/accounts/bob/topup", """{"amount_micro": 5, "unused": ["X"]}""", "POST", FieldErrors(("unused[0]", [InvalidText])) },
        // Outside a string it is simply not JSON.
        { "/admin/accounts/bob/topup", """{"amount_micro": 5X}""", "POST", FieldErrors(("body", [NotJson])) },
    };

    [Theory]
    [MemberData(nameof(InvalidUtf8Bodies))]
    public async Task Invalid_utf8_anywhere_is_400_naming_the_field_and_changes_nothing(string path, string body, string method, JsonObject errors)
    {
        // X stands for two bytes that are not UTF-8.
        var bytes = Encoding.Latin1.GetBytes(body.Replace("X", InvalidUtf8, StringComparison.Ordinal));
        await AssertRefusedAndNothingChangedAsync(() => SendBytesAsync(new HttpMethod(method), path, bytes), errors);
    }

    public static TheoryData<string, string, JsonObject> MalformedBodies() => new()
    {
        // Cut off anywhere.
        { "/admin/accounts/bob/topup", """{"amount_micro": 5, "note": "cut""", FieldErrors(("body", [NotJson])) },
        { "/admin/accounts/bob/topup", """{"amount_micro": 5,""", FieldErrors(("body", [NotJson])) },
        { "/admin/keys", """{"account": "bob", "scopes": ["tools:basic""", FieldErrors(("body", [NotJson])) },
        // Nested deeper than 16.
        { "/admin/accounts/bob/topup", """{"amount_micro": 5, "note": null, "x": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}""", FieldErrors(("body", [NotJson])) },
        { "/admin/keys", """{"account": "bob", "scopes": [[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]}""", FieldErrors(("body", [NotJson])) },
        // Numbers no long holds.
        { "/admin/accounts/bob/topup", """{"amount_micro": 9223372036854775808}""", FieldErrors(("amount_micro", ["Must be a whole number of micro-units greater than 0 (got 9223372036854775808)."])) },
        { "/admin/accounts/bob/topup", """{"amount_micro": 1e400}""", FieldErrors(("amount_micro", ["Must be a whole number of micro-units greater than 0 (got 1e400)."])) },
        { "/admin/accounts/bob/adjust", """{"amount_micro": -9223372036854775809, "note": "x"}""", FieldErrors(("amount_micro", ["Must be a whole number of micro-units other than 0 (got -9223372036854775809)."])) },
        { "/admin/accounts/bob/topup", $$"""{"amount_micro": {{new string('9', 100)}}}""", FieldErrors(("amount_micro", [$"Must be a whole number of micro-units greater than 0 (got {new string('9', 40)}…)."])) },
        // Repeated members, at the top or deeper, however they are spelled.
        { "/admin/accounts/bob/topup", """{"amount_micro": 5, "amo\u0075nt_micro": 500000}""", FieldErrors(("body", [NotJson])) },
        { "/admin/keys", """{"account": "bob", "scopes": [], "meta": {"a": 1, "a": 2}}""", FieldErrors(("body", [NotJson])) },
        // Wrong types.
        { "/admin/keys", """{"account": ["bob"], "scopes": {"0": "tools:basic"}, "id": 7, "expires_at": true}""", FieldErrors(
            ("account", ["Must be an account id: 1 to 200 characters, no control characters (got an array)."]),
            ("scopes", ["Must be an array of scope tokens (got an object)."]),
            ("expires_at", ["Must be a time in the future with a time zone, like 2030-01-01T00:00:00Z, or null (got true)."]),
            ("id", ["Must be a key id: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, or null (got 7)."])) },
        { "/admin/keys", """{"account": "bob", "scopes": [null, true, 1.5, {}, []]}""", FieldErrors(
            ("scopes[0]", ["Must be a scope token: printable ASCII without spaces, quotes, backslashes or commas (got null)."]),
            ("scopes[1]", ["Must be a scope token: printable ASCII without spaces, quotes, backslashes or commas (got true)."]),
            ("scopes[2]", ["Must be a scope token: printable ASCII without spaces, quotes, backslashes or commas (got 1.5)."]),
            ("scopes[3]", ["Must be a scope token: printable ASCII without spaces, quotes, backslashes or commas (got an object)."]),
            ("scopes[4]", ["Must be a scope token: printable ASCII without spaces, quotes, backslashes or commas (got an array)."])) },
        { "/admin/keys", "null", FieldErrors(("body", ["Must be a JSON object (got null)."])) },
        { "/admin/keys", "\"{}\"", FieldErrors(("body", ["Must be a JSON object (got \"{}\")."])) },
        // A time that no calendar holds, and one that overflows when made UTC.
        { "/admin/keys", """{"account": "bob", "scopes": [], "expires_at": "2030-02-30T00:00:00Z"}""", FieldErrors(
            ("expires_at", ["Must be a time in the future with a time zone, like 2030-01-01T00:00:00Z, or null (got \"2030-02-30T00:00:00Z\")."])) },
        { "/admin/keys", """{"account": "bob", "scopes": [], "expires_at": "9999-12-31T23:59:59-14:00"}""", FieldErrors(
            ("expires_at", ["Must be a time in the future with a time zone, like 2030-01-01T00:00:00Z, or null (got \"9999-12-31T23:59:59-14:00\")."])) },
    };

    [Theory]
    [MemberData(nameof(MalformedBodies))]
    public async Task A_malformed_body_is_400_naming_the_field_and_changes_nothing(string path, string body, JsonObject errors)
    {
        await AssertRefusedAndNothingChangedAsync(() => SendBytesAsync(HttpMethod.Post, path, Encoding.UTF8.GetBytes(body)), errors);
    }

    private async Task AssertRefusedAndNothingChangedAsync(Func<Task<HttpResponseMessage>> send, JsonObject errors)
    {
        var accounts = await SnapshotsAsync();

        using (var response = await send())
        {
            await AssertInvalidAsync(response, errors);
        }

        Assert.Equal(accounts, await SnapshotsAsync());
        Assert.DoesNotContain(_host.Logs.Entries, e => e.Category == "McpGuard.Admin");
        Assert.Empty(_host.Logs.Entries.Where(e => e.Level >= LogLevel.Error).Select(e => $"{e.Category}[{e.EventId.Id}]: {e.FullText}"));

        // Nothing was created either: the ids a refused body named are still free.
        using var created = await _host.PostAdminAsync("/admin/keys", """{"account": "bob", "scopes": [], "id": "k"}""");
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
    }

    private async Task<string[]> SnapshotsAsync() =>
    [
        await _host.SnapshotAsync("/admin/accounts/alice"),
        await _host.SnapshotAsync("/admin/accounts/alice/ledger"),
        await _host.SnapshotAsync("/admin/accounts/bob"),
        await _host.SnapshotAsync("/admin/accounts/bob/ledger"),
    ];

    private async Task<HttpResponseMessage> SendBytesAsync(HttpMethod method, string path, byte[] body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json");
        request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {AdminKey}");
        return await _host.Client.SendAsync(request);
    }
}

/// <summary>Admin bodies whose HTTP framing is broken, over a real socket: the client's error, and nothing changes.</summary>
public sealed class AdminFramingTests : IAsyncLifetime
{
    private const string TopUp = """{"amount_micro": 1000, "note": "framing"}""";

    private CountingHost _counting = null!;
    private string _ledgerBefore = null!;

    private GuardedHost Host => _counting.Host;

    public async Task InitializeAsync()
    {
        _counting = await CountingHost.StartAsync(builder => builder.WebHost.ConfigureKestrel(kestrel =>
            kestrel.Limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 240, gracePeriod: TimeSpan.FromSeconds(1.1))));
        _ledgerBefore = await LedgerAsync();
    }

    public async Task DisposeAsync() => await _counting.DisposeAsync();

    [Theory]
    [InlineData("zz\r\n")]
    [InlineData("5\r\n{\"amount_micro\": 1000}\r\n0\r\n\r\n")]
    [InlineData("fffffffffffffffff\r\n")]
    public async Task A_body_with_broken_chunks_is_400_naming_the_body(string chunks)
    {
        var response = await RawHttp.SendAsync(Host.BaseAddress, TopUpRequest(("Transfer-Encoding", "chunked"), Encoding.ASCII.GetBytes(chunks)));

        AssertProblem(response, "HTTP/1.1 400 Bad Request", "Invalid request", "See errors for what is wrong with each field; nothing was changed.",
            FieldErrors(("body", ["Must be a JSON object: the body could not be read; its chunked encoding or Content-Length is broken."])));
        await AssertNothingChangedAsync();
    }

    [Fact]
    public async Task A_body_that_arrives_too_slowly_is_408()
    {
        var body = Encoding.UTF8.GetBytes(TopUp);

        var response = await RawHttp.SendAsync(Host.BaseAddress, TopUpRequest(("Content-Length", body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)), body[..5]));

        AssertProblem(response, "HTTP/1.1 408 Request Timeout", "Request Timeout",
            "The request body arrived too slowly; send it without pausing, then retry. Nothing was changed.", errors: null);
        await AssertNothingChangedAsync();
    }

    [Fact]
    public async Task A_client_that_resets_the_connection_mid_body_is_logged_at_debug_and_changes_nothing()
    {
        var body = Encoding.UTF8.GetBytes(TopUp);
        var stopped = _counting.ConnectionsStopped;

        await using (var connection = await RawHttp.RawConnection.OpenAsync(Host.BaseAddress))
        {
            await connection.SendAsync(TopUpRequest(("Content-Length", body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)), body[..5]));
            await Host.Logs.WaitForAsync(25, TimeSpan.FromSeconds(10), "started reading request body");
            connection.Reset();
        }

        var logged = await Host.Logs.WaitForAsync(7102, TimeSpan.FromSeconds(10));
        Assert.Equal(LogLevel.Debug, logged.Level);
        Assert.Equal("The client disconnected while sending admin request POST /admin/accounts/bob/topup; nothing was changed.", logged.Message);
        await RawHttp.WaitUntilAsync(() => _counting.ConnectionsStopped > stopped, TimeSpan.FromSeconds(10), "Kestrel reports the connection stopped");
        await AssertNothingChangedAsync();
    }

    private async Task AssertNothingChangedAsync()
    {
        Assert.Equal(_ledgerBefore, await LedgerAsync());
        Assert.DoesNotContain(Host.Logs.Entries, e => e.Category == "McpGuard.Admin" && e.EventId.Id is >= 7001 and <= 7008);
        Assert.Empty(Host.Logs.Entries.Where(e => e.Level >= LogLevel.Error).Select(e => $"{e.Category}[{e.EventId.Id}]: {e.FullText}"));
    }

    private async Task<string> LedgerAsync()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/admin/accounts/bob/ledger");
        request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {DemoAdminKey}");
        using var response = await Host.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return await response.Content.ReadAsStringAsync();
    }

    private byte[] TopUpRequest((string Name, string Value) framing, byte[] body) => RawHttp.Request(
        "POST",
        "/admin/accounts/bob/topup",
        [
            new("Host", Host.BaseAddress.Authority),
            new("Content-Type", "application/json"),
            new("Authorization", $"Bearer {DemoAdminKey}"),
            new(framing.Name, framing.Value),
        ],
        body);

    /// <summary>An RFC 9457 answer exactly: status line, headers (Date only checked for presence) and the whole body.</summary>
    private static void AssertProblem(RawResponse? response, string statusLine, string title, string detail, JsonObject? errors)
    {
        Assert.NotNull(response);
        Assert.Equal(statusLine, response.StatusLine);
        Assert.Equal(["cache-control", "content-type", "date", "server", "transfer-encoding"], response.HeaderNames);
        Assert.Equal("no-store", response.Header("Cache-Control"));
        Assert.Equal("application/problem+json", response.Header("Content-Type"));
        Assert.Equal("Kestrel", response.Header("Server"));
        Assert.Equal("chunked", response.Header("Transfer-Encoding"));

        var actual = JsonNode.Parse(response.BodyText)!.AsObject();
        var traceId = actual["traceId"]?.GetValue<string>();
        Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$", traceId);
        var status = response.Status;
        var expected = new JsonObject
        {
            ["type"] = status == 408 ? "https://tools.ietf.org/html/rfc9110#section-15.5.9" : "https://tools.ietf.org/html/rfc9110#section-15.5.1",
            ["title"] = title,
            ["status"] = status,
            ["detail"] = detail,
            ["traceId"] = traceId,
        };
        if (errors is not null)
        {
            expected["errors"] = errors;
        }

        AuthResponses.AssertJsonEqual(expected, actual);
    }
}
