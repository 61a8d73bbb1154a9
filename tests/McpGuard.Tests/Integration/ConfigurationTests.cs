using System.Net;
using McpGuard.Errors;
using McpGuard.Sample;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace McpGuard.Tests.Integration;

/// <summary>Start-up validation that reports every problem at once, and configuration reloads, good and bad.</summary>
public sealed class ConfigurationTests : IDisposable
{

    private readonly string _directory = Directory.CreateTempSubdirectory("mcpguard-config-").FullName;

    private string ConfigPath => Path.Combine(_directory, "mcpguard.json");

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Invalid_options_fail_start_up_listing_every_problem()
    {
        var exception = await Assert.ThrowsAsync<OptionsValidationException>(() => GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Path"] = "mcp",
            ["McpGuard:MaxRequestBodySize"] = "0",
            ["McpGuard:MaxJsonDepth"] = "2000",
            ["McpGuard:RequestIdHeader"] = "X Request Id",
            ["McpGuard:AllowedOrigins:2"] = "https://app.example.com/",
            ["McpGuard:AllowedOrigins:3"] = "app.example.com",
            ["McpGuard:Errors:Reasons:no_such_reason:Code"] = "-31000",
            ["McpGuard:Errors:Reasons:rate_limited:Code"] = "-32050",
            ["McpGuard:Errors:Reasons:parse_error:Message"] = " ",
            ["McpGuard:Errors:Reasons:parse_error:Url"] = "errors/parse_error",
        }, inMemory: true));

        var knownReasons = string.Join(", ", McpGuardErrorCatalog.Defaults.Select(d => d.Reason));
        Assert.Equal(
            "parse_error, invalid_request, payload_too_large, request_timeout, unsupported_media_type, not_acceptable, method_not_allowed, "
            + "origin_not_allowed, header_mismatch, internal_error, unauthorized, invalid_token, insufficient_scope, suspended, "
            + "rate_limited, limiter_unavailable, out_of_credit, cap_reached, price_above_limit, duplicate_request, ledger_unavailable, streamable_http_required, tool_paused, tool_archived, session_not_found, upstream_error, upstream_timeout, "
            + "invalid_parameter, not_found, forbidden, timeout",
            knownReasons);
        string[] expected =
            [
                "McpGuard:Path must start with '/' (got 'mcp').",
                "McpGuard:MaxRequestBodySize must be between 1 and 2147483591 bytes (got 0).",
                "McpGuard:MaxJsonDepth must be between 1 and 1024 (got 2000).",
                "McpGuard:RequestIdHeader must be a valid HTTP header name (got 'X Request Id').",
                "McpGuard:AllowedOrigins:2 must be '*' or an origin like 'https://app.example.com' with no path or trailing slash (got 'https://app.example.com/').",
                "McpGuard:AllowedOrigins:3 must be '*' or an origin like 'https://app.example.com' with no path or trailing slash (got 'app.example.com').",
                "McpGuard:Errors:Reasons:no_such_reason: unknown reason 'no_such_reason'. Known reasons: " + knownReasons + ".",
                "McpGuard:Errors:Reasons:rate_limited:Code -32050 lies in -32099..-32020, which the MCP specification reserves; it defines only -32042, -32022, -32021, -32020 there. Application codes belong outside -32768..-32000.",
                "McpGuard:Errors:Reasons:parse_error:Message must not be empty.",
                "McpGuard:Errors:Reasons:parse_error:Url must be an absolute URI.",
            ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), exception.Failures.Order(StringComparer.Ordinal));
        Assert.Equal(typeof(McpGuardOptions), exception.OptionsType);
        foreach (var failure in exception.Failures)
        {
            Assert.Contains(failure, exception.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("-32020")]
    [InlineData("-32042")]
    [InlineData("-31999")]
    [InlineData("-32768")]
    public async Task Codes_the_specification_defines_or_outside_its_reserved_block_are_accepted(string code)
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Errors:Reasons:origin_not_allowed:Code"] = code });

        using var response = await host.PostMcpAsync("{}", headers: new Dictionary<string, string> { ["Origin"] = "http://evil.example" });

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.Forbidden, int.Parse(code, System.Globalization.CultureInfo.InvariantCulture),
            "Origin not allowed: this server does not accept requests from that web origin.", "origin_not_allowed", id: null);
    }

    [Fact]
    public async Task A_bad_reload_is_logged_and_the_last_good_configuration_stays()
    {
        await WriteConfigAsync("""{ "McpGuard": { "MaxRequestBodySize": 100 } }""");
        await using var host = await StartWithConfigFileAsync();
        var (body, message) = EchoCallOfSize(150);
        using (var before = await host.PostMcpAsync(body))
        {
            await AssertTooLargeAsync(before, 100);
        }

        await WriteConfigAsync("""{ "McpGuard": { "MaxRequestBodySize": 0, "Path": "nope" } }""");
        var rejected = await WaitForLogAsync(host, 1001);

        Assert.Equal(LogLevel.Error, rejected.Level);
        Assert.Equal(
            "McpGuard configuration reload rejected; the last good configuration stays in force. "
            + "McpGuard:Path must start with '/' (got 'nope'). McpGuard:MaxRequestBodySize must be between 1 and 2147483591 bytes (got 0).",
            rejected.Message);
        using var after = await host.PostMcpAsync(body);
        await AssertTooLargeAsync(after, 100);
        Assert.DoesNotContain(host.Logs.Entries, e => e.EventId.Id == 1002);
    }

    [Fact]
    public async Task A_reload_with_a_value_that_does_not_bind_is_logged_and_ignored()
    {
        await WriteConfigAsync("""{ "McpGuard": { "MaxRequestBodySize": 100 } }""");
        await using var host = await StartWithConfigFileAsync();

        await WriteConfigAsync("""{ "McpGuard": { "MaxRequestBodySize": 100, "Errors": { "Format": "Xml" } } }""");
        var rejected = await WaitForLogAsync(host, 1001);

        Assert.StartsWith("McpGuard configuration reload rejected; the last good configuration stays in force. ", rejected.Message, StringComparison.Ordinal);
        Assert.Contains("Xml", rejected.Message, StringComparison.Ordinal);
        using var response = await host.PostMcpAsync(EchoCallOfSize(150).Body);
        await AssertTooLargeAsync(response, 100);
        Assert.DoesNotContain(host.Logs.Entries, e => e.EventId.Id == 1002);
    }

    [Fact]
    public async Task A_good_reload_takes_effect()
    {
        await WriteConfigAsync("""{ "McpGuard": { "MaxRequestBodySize": 100 } }""");
        await using var host = await StartWithConfigFileAsync();
        var (body, message) = EchoCallOfSize(150);
        using (var before = await host.PostMcpAsync(body))
        {
            await AssertTooLargeAsync(before, 100);
        }

        await WriteConfigAsync("""{ "McpGuard": { "MaxRequestBodySize": 400, "Errors": { "Reasons": { "parse_error": { "Code": -31998 } } } } }""");
        var reloaded = await WaitForLogAsync(host, 1002);

        Assert.Equal("McpGuard configuration reloaded.", reloaded.Message);
        Assert.DoesNotContain(host.Logs.Entries, e => e.EventId.Id == 1001);
        using var passed = await host.PostMcpAsync(body);
        Assert.Equal(HttpStatusCode.OK, passed.StatusCode);
        FrontDoorTests.AssertEchoResult(await Sse.ReadSingleMessageAsync(passed), id: 6, text: message);
        using var parse = await host.PostMcpAsync("{");
        await WireAssert.JsonRpcErrorAsync(parse, HttpStatusCode.BadRequest, -31998, "Parse error: the request body is not valid JSON.", "parse_error", id: null);
    }

    [Fact]
    public async Task A_good_reload_changes_what_mcpguards_jwt_scheme_accepts()
    {
        const string OtherIssuer = "http://127.0.0.1:5080/other-issuer";
        await WriteConfigAsync("""{ "McpGuard": { "Auth": { "Jwt": { "Enabled": true } } } }""");
        await using var host = await StartWithConfigFileAsync();
        using (var before = await host.PostMcpAsync(AuthResponses.Echo("before"), apiKey: TestTokens.Create()))
        {
            await AuthResponses.AssertToolTextAsync(before, "before");
        }

        await WriteConfigAsync($$"""{ "McpGuard": { "Auth": { "Jwt": { "Enabled": true, "Issuer": "{{OtherIssuer}}" } } } }""");
        await WaitForLogAsync(host, 1002);

        // The scheme's options are rebuilt from the reloaded configuration: the old issuer is refused, the new one accepted.
        using (var oldIssuer = await host.PostMcpAsync(AuthResponses.Echo("old"), apiKey: TestTokens.Create()))
        {
            await AuthResponses.AssertJsonRpcErrorAsync(oldIssuer, HttpStatusCode.Unauthorized, AuthResponses.InvalidTokenEchoChallenge, -31102,
                AuthResponses.InvalidTokenMessage, "invalid_token");
        }

        using var newIssuer = await host.PostMcpAsync(AuthResponses.Echo("new"), apiKey: TestTokens.Create(issuer: OtherIssuer));
        await AuthResponses.AssertToolTextAsync(newIssuer, "new");
    }

    private Task<GuardedHost> StartWithConfigFileAsync() =>
        GuardedHost.StartSampleAsync(configure: builder => builder.ConfigureAppConfiguration((_, config) => config.AddJsonFile(ConfigPath, optional: false, reloadOnChange: true)));

    private Task WriteConfigAsync(string json) => ConfigFile.ReplaceAsync(ConfigPath, json);

    /// <summary>File watchers report changes asynchronously: waits for the reload's log event.</summary>
    private static Task<LogEntry> WaitForLogAsync(GuardedHost host, int eventId) => host.Logs.WaitForAsync(eventId, ConfigFile.ReloadBound);

    private static async Task AssertTooLargeAsync(HttpResponseMessage response, int limit) =>
        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, -32600,
            $"Payload Too Large: the request body exceeds {limit} bytes.", "payload_too_large", id: null);

    /// <summary>An echo call of exactly <paramref name="size"/> bytes (ASCII), and the message it echoes.</summary>
    private static (string Body, string Message) EchoCallOfSize(int size)
    {
        const string Head = """{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"message":""";
        const string Tail = "\"}}}";
        var message = new string('m', size - Head.Length - 1 - Tail.Length);
        var body = Head + "\"" + message + Tail;
        Assert.Equal(size, body.Length);
        return (body, message);
    }
}
