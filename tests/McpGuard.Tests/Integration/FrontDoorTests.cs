using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;

namespace McpGuard.Tests.Integration;

/// <summary>
/// The front door of the sample, over real HTTP, in the default JSON-RPC rendering: every refusal a
/// misbehaving client can provoke, with the exact status, headers and body it sees.
/// </summary>
public sealed class FrontDoorTests(FrontDoorTests.SampleFixture fixture) : IClassFixture<FrontDoorTests.SampleFixture>
{
    private const string Ping = """{"jsonrpc":"2.0","id":1,"method":"ping"}""";
    private const string EchoCall = """{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}""";

    private GuardedHost Host => fixture.Host;

    /// <summary>One sample host for the tests that use its own configuration.</summary>
    public sealed class SampleFixture : IAsyncLifetime
    {
        public GuardedHost Host { get; private set; } = null!;

        public async Task InitializeAsync() => Host = await GuardedHost.StartSampleAsync();

        public async Task DisposeAsync() => await Host.DisposeAsync();
    }

    // ---- JSON-RPC envelope ----

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping" """)]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping"} trailing""")]
    [InlineData("""{'jsonrpc':'2.0'}""")]
    public async Task Malformed_json_is_400_parse_error_with_a_null_id(string body)
    {
        using var response = await Host.PostMcpAsync(body);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32700,
            "Parse error: the request body is not valid JSON.", "parse_error", id: null);
    }

    [Fact]
    public async Task A_body_that_is_not_utf8_is_400_parse_error()
    {
        byte[] body = [.. """{"jsonrpc":"2.0","id":1,"method":"ping","x":" """u8.ToArray(), 0xC3, 0x28, .. "\"}"u8.ToArray()];

        using var response = await Host.PostMcpAsync(body);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32700,
            "Parse error: the request body is not valid UTF-8.", "parse_error", id: null);
    }

    [Fact]
    public async Task Wrong_jsonrpc_version_is_400_invalid_request_echoing_a_numeric_id()
    {
        using var response = await Host.PostMcpAsync("""{"jsonrpc":"1.0","id":7,"method":"ping"}""");

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32600,
            "Invalid Request: missing or invalid jsonrpc version", "invalid_request", id: 7L);
    }

    [Fact]
    public async Task Missing_jsonrpc_member_is_400_invalid_request_echoing_a_string_id()
    {
        using var response = await Host.PostMcpAsync("""{"id":"abc-1","method":"ping"}""");

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32600,
            "Invalid Request: missing or invalid jsonrpc version", "invalid_request", id: "abc-1");
    }

    [Fact]
    public async Task Jsonrpc_as_a_number_is_400_invalid_request()
    {
        using var response = await Host.PostMcpAsync("""{"jsonrpc":2.0,"id":8,"method":"ping"}""");

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32600,
            "Invalid Request: missing or invalid jsonrpc version", "invalid_request", id: 8L);
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":3,"method":42}""")]
    [InlineData("""{"jsonrpc":"2.0","id":3,"method":null}""")]
    [InlineData("""{"jsonrpc":"2.0","id":3,"method":["tools/call"]}""")]
    [InlineData("""{"jsonrpc":"2.0","id":3}""")]
    public async Task A_method_that_is_not_a_string_is_400_invalid_request_echoing_the_id(string body)
    {
        using var response = await Host.PostMcpAsync(body);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32600,
            "Invalid Request: method must be a string.", "invalid_request", id: 3L);
    }

    [Theory]
    [InlineData("null")]
    [InlineData("true")]
    [InlineData("false")]
    [InlineData("""{"n":1}""")]
    [InlineData("[1]")]
    [InlineData("1.5")]
    [InlineData("1e3")]
    public async Task An_id_that_is_not_a_string_or_integer_is_400_invalid_request_with_a_null_id(string id)
    {
        using var response = await Host.PostMcpAsync($$"""{"jsonrpc":"2.0","id":{{id}},"method":"ping"}""");

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32600,
            "Invalid Request: id must be a string or an integer.", "invalid_request", id: null);
    }

    [Fact]
    public async Task A_batch_is_400_invalid_request_with_a_null_id()
    {
        using var response = await Host.PostMcpAsync($"[{Ping},{EchoCall}]");

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32600,
            "Invalid Request: batches are not supported; send one JSON-RPC message per POST.", "invalid_request", id: null);
    }

    [Theory]
    [InlineData("\"ping\"")]
    [InlineData("42")]
    public async Task A_body_that_is_not_an_object_is_400_invalid_request(string body)
    {
        using var response = await Host.PostMcpAsync(body);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32600,
            "Invalid Request: the body must be a JSON-RPC object.", "invalid_request", id: null);
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":4,"method":"tools/list","method":"tools/call","params":{"name":"echo"}}""", "method")]
    [InlineData("""{"jsonrpc":"2.0","jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}""", "jsonrpc")]
    [InlineData("""{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo"},"params":{"name":"add"}}""", "params")]
    [InlineData("""{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","name":"add"}}""", "params.name")]
    public async Task Duplicate_envelope_members_are_400_invalid_request_echoing_the_id(string body, string member)
    {
        // A params object after the duplicate must not throw the parser off (it used to turn this into a parse error).
        using var response = await Host.PostMcpAsync(body);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32600,
            $"Invalid Request: duplicate member '{member}'.", "invalid_request", id: 4L);
    }

    // ---- Body size ----

    [Fact]
    public async Task A_body_over_the_limit_with_content_length_is_413()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:MaxRequestBodySize"] = "64" });
        var body = OversizedEcho(64);

        using var response = await host.PostMcpAsync(body);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, -32600,
            "Payload Too Large: the request body exceeds 64 bytes.", "payload_too_large", id: null);
    }

    [Fact]
    public async Task A_chunked_body_over_the_limit_is_413()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:MaxRequestBodySize"] = "64" });
        using var request = ChunkedPost(OversizedEcho(64));

        using var response = await host.Client.SendAsync(request);

        Assert.True(request.Headers.TransferEncodingChunked, "the request must have been sent chunked");
        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, -32600,
            "Payload Too Large: the request body exceeds 64 bytes.", "payload_too_large", id: null);
    }

    [Fact]
    public async Task A_body_exactly_at_the_limit_passes_with_and_without_content_length()
    {
        var body = Encoding.UTF8.GetByteCount(Ping);
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:MaxRequestBodySize"] = body.ToString(System.Globalization.CultureInfo.InvariantCulture) });

        using var sized = await host.PostMcpAsync(Ping);
        using var chunkedRequest = ChunkedPost(Ping);
        using var chunked = await host.Client.SendAsync(chunkedRequest);

        foreach (var response in new[] { sized, chunked })
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var message = await Sse.ReadSingleMessageAsync(response);
            WireAssert.JsonEquals("""{"jsonrpc":"2.0","id":1,"result":{}}""", message);
        }
    }

    // ---- Content-Type ----

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/json; charset=latin1")]
    [InlineData("application/json; charset=utf-16")]
    [InlineData("application/jsonx")]
    [InlineData("text/json")]
    [InlineData(null)]
    public async Task A_content_type_other_than_json_is_415(string? contentType)
    {
        using var response = await Host.PostMcpAsync(Ping, contentType: contentType);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.UnsupportedMediaType, -32600,
            "Unsupported Media Type: send the body as Content-Type: application/json.", "unsupported_media_type", id: null);
    }

    [Theory]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("application/json; charset=\"UTF-8\"")]
    [InlineData("Application/JSON")]
    public async Task Json_content_types_with_utf8_pass(string contentType)
    {
        using var response = await Host.PostMcpAsync(Ping, contentType: contentType);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        WireAssert.JsonEquals("""{"jsonrpc":"2.0","id":1,"result":{}}""", await Sse.ReadSingleMessageAsync(response));
    }

    // ---- Accept ----

    [Theory]
    [InlineData("application/json")]
    [InlineData("text/event-stream")]
    [InlineData("text/html, application/xml")]
    [InlineData(null)]
    public async Task An_accept_header_lacking_json_or_event_stream_is_406(string? accept)
    {
        using var response = await Host.PostMcpAsync(Ping, accept: accept);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.NotAcceptable, -32600,
            "Not Acceptable: the client must accept both application/json and text/event-stream.", "not_acceptable", id: null);
    }

    [Theory]
    [InlineData("*/*")]
    [InlineData("text/event-stream, application/json")]
    [InlineData("application/json;q=0.9, text/event-stream;q=0.8")]
    [InlineData("application/*, text/*")]
    public async Task Accept_headers_covering_both_types_pass(string accept)
    {
        using var response = await Host.PostMcpAsync(Ping, accept: accept);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        WireAssert.JsonEquals("""{"jsonrpc":"2.0","id":1,"result":{}}""", await Sse.ReadSingleMessageAsync(response));
    }

    // ---- HTTP method ----

    [Theory]
    [InlineData("GET")]
    [InlineData("DELETE")]
    [InlineData("PUT")]
    public async Task Methods_other_than_post_are_405_with_allow_post(string method)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), "/mcp");
        request.Headers.TryAddWithoutValidation("Accept", "application/json, text/event-stream");

        using var response = await Host.Client.SendAsync(request);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.MethodNotAllowed, -32600,
            "Method Not Allowed: this endpoint accepts POST.", "method_not_allowed", id: null);
        Assert.Equal(["POST"], response.Content.Headers.Allow);
    }

    // ---- Origin ----

    [Theory]
    [InlineData("http://evil.example")]
    [InlineData("http://localhost:5081")]
    [InlineData("https://localhost:5080")]
    [InlineData("null")]
    public async Task An_origin_not_in_the_allow_list_is_403(string origin)
    {
        using var response = await Host.PostMcpAsync(Ping, headers: new Dictionary<string, string> { ["Origin"] = origin });

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.Forbidden, -31105,
            "Origin not allowed: this server does not accept requests from that web origin.", "origin_not_allowed", id: null);
    }

    [Fact]
    public async Task A_bad_origin_is_refused_before_the_method_check()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/mcp");
        request.Headers.TryAddWithoutValidation("Origin", "http://evil.example");

        using var response = await Host.Client.SendAsync(request);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.Forbidden, -31105,
            "Origin not allowed: this server does not accept requests from that web origin.", "origin_not_allowed", id: null);
        Assert.False(response.Content.Headers.Contains("Allow"));
    }

    [Theory]
    [InlineData("http://localhost:5080")]
    [InlineData("http://127.0.0.1:5080")]
    [InlineData("HTTP://LOCALHOST:5080")]
    public async Task An_allowed_origin_passes(string origin)
    {
        using var response = await Host.PostMcpAsync(Ping, headers: new Dictionary<string, string> { ["Origin"] = origin });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        WireAssert.JsonEquals("""{"jsonrpc":"2.0","id":1,"result":{}}""", await Sse.ReadSingleMessageAsync(response));
    }

    [Fact]
    public async Task A_request_without_origin_passes()
    {
        using var response = await Host.PostMcpAsync(Ping);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        WireAssert.JsonEquals("""{"jsonrpc":"2.0","id":1,"result":{}}""", await Sse.ReadSingleMessageAsync(response));
    }

    [Fact]
    public async Task A_wildcard_allows_any_origin()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:AllowedOrigins:2"] = "*" });

        using var response = await host.PostMcpAsync(Ping, headers: new Dictionary<string, string> { ["Origin"] = "https://anything.example" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        WireAssert.JsonEquals("""{"jsonrpc":"2.0","id":1,"result":{}}""", await Sse.ReadSingleMessageAsync(response));
    }

    public static TheoryData<string, string, bool> OwnOrigins => new()
    {
        // (Host header, Origin header, accepted): with no AllowedOrigins, a page the same loopback server serves.
        { "127.0.0.1:{port}", "http://127.0.0.1:{port}", true },
        { "localhost:{port}", "http://localhost:{port}", true },
        { "LOCALHOST:{port}", "http://localhost:{port}", true },
        { "[::1]:{port}", "http://[::1]:{port}", true },
        { "127.0.0.1:{port}", "http://localhost:{port}", false },
        { "127.0.0.1:{port}", "http://127.0.0.1:1", false },
        { "127.0.0.1:{port}", "https://127.0.0.1:{port}", false },
        { "127.0.0.1:{port}", "http://127.0.0.1:{port}/", false },
        { "127.0.0.1:{port}", "null", false },
        // DNS rebinding: the page's own name resolves to loopback, but its Host is not a loopback name.
        { "rebind.example:{port}", "http://rebind.example:{port}", false },
        { "127.0.0.2:{port}", "http://127.0.0.2:{port}", false },
        { "localhost.evil.example:{port}", "http://localhost.evil.example:{port}", false },
    };

    [Theory]
    [MemberData(nameof(OwnOrigins))]
    public async Task With_no_allowed_origins_only_the_requests_own_loopback_origin_passes(string hostHeader, string originHeader, bool accepted)
    {
        await using var host = await OriginHost.StartAsync(allowed: null);
        var port = host.BaseAddress.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);

        using var response = await host.PostMcpAsync(Ping, headers: new Dictionary<string, string>
        {
            ["Host"] = hostHeader.Replace("{port}", port, StringComparison.Ordinal),
            ["Origin"] = originHeader.Replace("{port}", port, StringComparison.Ordinal),
        }, apiKey: null);

        if (accepted)
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            WireAssert.JsonEquals("""{"jsonrpc":"2.0","id":1,"result":{}}""", await Sse.ReadSingleMessageAsync(response));
        }
        else
        {
            await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.Forbidden, -31105,
                "Origin not allowed: this server does not accept requests from that web origin.", "origin_not_allowed", id: null);
        }
    }

    [Fact]
    public async Task With_allowed_origins_configured_the_own_loopback_origin_needs_listing_too()
    {
        await using var host = await OriginHost.StartAsync(allowed: "https://app.example.com");
        var own = $"http://127.0.0.1:{host.BaseAddress.Port}";

        using var response = await host.PostMcpAsync(Ping, headers: new Dictionary<string, string> { ["Origin"] = own }, apiKey: null);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.Forbidden, -31105,
            "Origin not allowed: this server does not accept requests from that web origin.", "origin_not_allowed", id: null);
    }

    /// <summary>A guarded MapMcp() with the sample's tools and no key, with or without an AllowedOrigins entry.</summary>
    private static class OriginHost
    {
        public static Task<GuardedHost> StartAsync(string? allowed) =>
            GuardedHost.StartMcpAsync(
                server => server.WithTools<McpGuard.Sample.SampleTools>(),
                allowed is null ? null : new Dictionary<string, string?> { ["McpGuard:AllowedOrigins:0"] = allowed });
    }

    // ---- Mcp-Method / Mcp-Name ----

    [Fact]
    public async Task An_mcp_method_header_disagreeing_with_the_body_is_400_header_mismatch()
    {
        using var response = await Host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["Mcp-Method"] = "tools/list" });

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32020,
            "Header mismatch: Mcp-Method header value 'tools/list' does not match body value 'tools/call'.", "header_mismatch", id: 5L);
    }

    [Fact]
    public async Task An_mcp_name_header_disagreeing_with_the_tool_name_is_400_header_mismatch()
    {
        using var response = await Host.PostMcpAsync(
            """{"jsonrpc":"2.0","id":"call-9","method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}""",
            headers: new Dictionary<string, string> { ["Mcp-Method"] = "tools/call", ["Mcp-Name"] = "add" });

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32020,
            "Header mismatch: Mcp-Name header value 'add' does not match body value 'echo'.", "header_mismatch", id: "call-9");
    }

    [Fact]
    public async Task An_mcp_name_header_on_a_method_whose_name_the_guard_does_not_read_is_the_servers_to_judge()
    {
        // tools/list has no name: the SDK ignores the header, and so does the guard.
        using var response = await Host.PostMcpAsync(
            """{"jsonrpc":"2.0","id":2,"method":"tools/list"}""",
            headers: new Dictionary<string, string> { ["Mcp-Method"] = "tools/list", ["Mcp-Name"] = "echo" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = await Sse.ReadSingleMessageAsync(response);
        Assert.Equal(2, answer.GetProperty("id").GetInt32());
        Assert.True(answer.GetProperty("result").GetProperty("tools").GetArrayLength() > 0);
    }

    [Theory]
    [InlineData("tasks/get")]
    [InlineData("tasks/cancel")]
    [InlineData("tasks/update")]
    public async Task An_mcp_name_header_on_a_tasks_method_reaches_the_server(string method)
    {
        // The tasks extension names its task by taskId, which the guard does not read; the sample has no tasks, so the
        // SDK answers for itself. The guard does not refuse with -32020.
        using var response = await Host.PostMcpAsync(
            $$$"""{"jsonrpc":"2.0","id":3,"method":"{{{method}}}","params":{"taskId":"t-1"} }""",
            headers: new Dictionary<string, string> { ["Mcp-Method"] = method, ["Mcp-Name"] = "t-1" });

        var text = await response.Content.ReadAsStringAsync();
        Assert.DoesNotContain("header_mismatch", text, StringComparison.Ordinal);
        Assert.DoesNotContain("-32020", text, StringComparison.Ordinal);
        Assert.NotNull(WireAssert.RequestId(response));
    }

    [Theory]
    [InlineData("initialize")]
    [InlineData("ping")]
    [InlineData("logging/setLevel")]
    [InlineData("resources/subscribe")]
    [InlineData("resources/unsubscribe")]
    public async Task A_method_removed_at_2026_reaches_the_server_which_answers_404_method_not_found(string method)
    {
        // Only _meta, as a 2026-07-28 client sends: the params these methods needed before are not McpGuard's to demand.
        using var response = await Host.PostMcpAsync(
            $$$"""{"jsonrpc":"2.0","id":4,"method":"{{{method}}}","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{},"io.modelcontextprotocol/clientInfo":{"name":"c","version":"1"} } } }""",
            headers: new Dictionary<string, string> { ["MCP-Protocol-Version"] = "2026-07-28", ["Mcp-Method"] = method });

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        WireAssert.IsGeneratedRequestId(WireAssert.RequestId(response));
        var expected = JsonNode.Parse($$$"""{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"Method '{{{method}}}' is not available on protocol version '2026-07-28'."}}""");
        var actual = JsonNode.Parse(await response.Content.ReadAsStringAsync());
        Assert.True(JsonNode.DeepEquals(expected, actual), actual?.ToJsonString());
    }

    [Fact]
    public async Task A_long_mismatching_header_is_echoed_truncated()
    {
        var value = new string('x', 150);

        using var response = await Host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["Mcp-Method"] = value });

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32020,
            $"Header mismatch: Mcp-Method header value '{new string('x', 100)}…' does not match body value 'tools/call'.", "header_mismatch", id: 5L);
    }

    [Theory]
    [InlineData("echo")]
    [InlineData("=?base64?ZWNobw==?=")]
    public async Task Matching_mcp_method_and_mcp_name_headers_pass_to_the_tool(string name)
    {
        using var response = await Host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["Mcp-Method"] = "tools/call", ["Mcp-Name"] = name });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertEchoResult(await Sse.ReadSingleMessageAsync(response), id: 5, text: "hi");
    }

    [Fact]
    public async Task A_base64_mcp_name_that_decodes_to_another_tool_is_400_header_mismatch()
    {
        // "add", base64-encoded.
        using var response = await Host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["Mcp-Method"] = "tools/call", ["Mcp-Name"] = "=?base64?YWRk?=" });

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32020,
            "Header mismatch: Mcp-Name header value '=?base64?YWRk?=' does not match body value 'echo'.", "header_mismatch", id: 5L);
    }

    [Fact]
    public async Task From_2026_07_28_a_missing_mcp_method_header_is_400_header_mismatch()
    {
        using var response = await Host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["MCP-Protocol-Version"] = "2026-07-28" });

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32020,
            "Header mismatch: the Mcp-Method header is required.", "header_mismatch", id: 5L);
    }

    [Fact]
    public async Task From_2026_07_28_a_missing_mcp_name_header_on_a_tool_call_is_400_header_mismatch()
    {
        using var response = await Host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string>
        {
            ["MCP-Protocol-Version"] = "2026-07-28",
            ["Mcp-Method"] = "tools/call",
        });

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32020,
            "Header mismatch: the Mcp-Name header is required.", "header_mismatch", id: 5L);
    }

    [Fact]
    public async Task From_2026_07_28_a_tool_call_with_matching_headers_passes()
    {
        // The SDK server wants the per-request metadata 2026-07-28 introduced; the guard only checks the headers.
        const string Call = """
            {"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"},"_meta":{
              "io.modelcontextprotocol/protocolVersion":"2026-07-28",
              "io.modelcontextprotocol/clientCapabilities":{},
              "io.modelcontextprotocol/clientInfo":{"name":"front-door-test","version":"1.0"}}}}
            """;

        using var response = await Host.PostMcpAsync(Call, headers: new Dictionary<string, string>
        {
            ["MCP-Protocol-Version"] = "2026-07-28",
            ["Mcp-Method"] = "tools/call",
            ["Mcp-Name"] = "echo",
        });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertEchoResult(await Sse.ReadSingleMessageAsync(response), id: 5, text: "hi");
    }

    [Fact]
    public async Task Before_2026_07_28_the_headers_are_optional()
    {
        using var response = await Host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["MCP-Protocol-Version"] = "2025-11-25" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertEchoResult(await Sse.ReadSingleMessageAsync(response), id: 5, text: "hi");
    }

    // ---- What passes ----

    [Fact]
    public async Task An_accepted_notification_is_202_with_no_body()
    {
        using var response = await Host.PostMcpAsync("""{"jsonrpc":"2.0","method":"notifications/initialized"}""");

        Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        Assert.Empty(await response.Content.ReadAsByteArrayAsync());
        Assert.Null(response.Content.Headers.ContentType);
        WireAssert.IsGeneratedRequestId(WireAssert.RequestId(response));
    }

    [Fact]
    public async Task A_well_formed_tool_call_reaches_the_tool()
    {
        using var response = await Host.PostMcpAsync(EchoCall);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        WireAssert.IsGeneratedRequestId(WireAssert.RequestId(response));
        AssertEchoResult(await Sse.ReadSingleMessageAsync(response), id: 5, text: "hi");
    }

    [Fact]
    public async Task Refusals_are_logged_once_at_information_with_the_reason_and_request_id()
    {
        using var response = await Host.PostMcpAsync("""{"jsonrpc":"2.0","id":1,"method":"ping", }""");
        var requestId = WireAssert.RequestId(response);

        var entry = Assert.Single(Host.Logs.Entries, e => e.Message.Contains(requestId, StringComparison.Ordinal));
        Assert.Equal(2001, entry.EventId.Id);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Information, entry.Level);
        Assert.Equal($"McpGuard refused request {requestId}: parse_error (400).", entry.Message);
    }

    // ---- Request ids ----

    [Theory]
    [InlineData("abc-123")]
    [InlineData("trace:4bf92f3577b34da6.a3ce929d0e0e4736_01")]
    [InlineData("x")]
    public async Task A_well_formed_incoming_request_id_is_kept_on_errors(string incoming)
    {
        using var response = await Host.PostMcpAsync("{", headers: new Dictionary<string, string> { ["X-Request-Id"] = incoming });

        var requestId = await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32700,
            "Parse error: the request body is not valid JSON.", "parse_error", id: null);
        Assert.Equal(incoming, requestId);
    }

    [Fact]
    public async Task A_request_id_of_exactly_128_characters_is_kept()
    {
        var incoming = new string('a', 128);

        using var response = await Host.PostMcpAsync("{", headers: new Dictionary<string, string> { ["X-Request-Id"] = incoming });

        Assert.Equal(incoming, await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32700,
            "Parse error: the request body is not valid JSON.", "parse_error", id: null));
    }

    public static TheoryData<string> MalformedRequestIds => ["has space", "semi;colon", "quote\"d", "slash/ed", new string('a', 129)];

    [Theory]
    [MemberData(nameof(MalformedRequestIds))]
    public async Task A_malformed_incoming_request_id_is_replaced(string incoming)
    {
        using var response = await Host.PostMcpAsync("{", headers: new Dictionary<string, string> { ["X-Request-Id"] = incoming });

        var requestId = await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32700,
            "Parse error: the request body is not valid JSON.", "parse_error", id: null);
        WireAssert.IsGeneratedRequestId(requestId);
        Assert.DoesNotContain(incoming, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_incoming_request_ids_are_replaced()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent("{", Encoding.UTF8, "application/json") };
        request.Headers.TryAddWithoutValidation("Accept", "application/json, text/event-stream");
        request.Headers.TryAddWithoutValidation("X-Request-Id", ["first", "second"]);

        using var response = await Host.Client.SendAsync(request);

        WireAssert.IsGeneratedRequestId(await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32700,
            "Parse error: the request body is not valid JSON.", "parse_error", id: null));
    }

    [Fact]
    public async Task A_non_ascii_incoming_request_id_is_replaced()
    {
        // Kestrel refuses non-ASCII header bytes by default; let both ends speak UTF-8 so the guard sees them.
        await using var host = await GuardedHost.StartSampleAsync(configure: builder =>
            builder.ConfigureKestrel(kestrel => kestrel.RequestHeaderEncodingSelector = _ => Encoding.UTF8));
        using var client = new HttpClient(new SocketsHttpHandler { RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8 }) { BaseAddress = host.BaseAddress };
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent("{", Encoding.UTF8, "application/json") };
        request.Headers.TryAddWithoutValidation("Accept", "application/json, text/event-stream");
        request.Headers.TryAddWithoutValidation("X-Request-Id", "réq-1");

        using var response = await client.SendAsync(request);

        WireAssert.IsGeneratedRequestId(await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32700,
            "Parse error: the request body is not valid JSON.", "parse_error", id: null));
    }

    [Fact]
    public async Task The_request_id_is_on_success_responses_too()
    {
        using var kept = await Host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["X-Request-Id"] = "client-42" });
        using var fresh = await Host.PostMcpAsync(EchoCall);
        using var replaced = await Host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["X-Request-Id"] = "not ok" });

        Assert.Equal(HttpStatusCode.OK, kept.StatusCode);
        Assert.Equal("client-42", WireAssert.RequestId(kept));
        AssertEchoResult(await Sse.ReadSingleMessageAsync(kept), id: 5, text: "hi");
        Assert.Equal(HttpStatusCode.OK, fresh.StatusCode);
        WireAssert.IsGeneratedRequestId(WireAssert.RequestId(fresh));
        Assert.Equal(HttpStatusCode.OK, replaced.StatusCode);
        WireAssert.IsGeneratedRequestId(WireAssert.RequestId(replaced));
        Assert.NotEqual(WireAssert.RequestId(fresh), WireAssert.RequestId(replaced));
    }

    [Fact]
    public async Task The_request_id_header_name_is_configurable()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:RequestIdHeader"] = "X-Correlation-Id" });

        using var error = await host.PostMcpAsync("{", headers: new Dictionary<string, string> { ["X-Correlation-Id"] = "corr-1", ["X-Request-Id"] = "ignored-1" });
        using var success = await host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["X-Correlation-Id"] = "corr-2" });

        Assert.Equal("corr-1", await WireAssert.JsonRpcErrorAsync(error, HttpStatusCode.BadRequest, -32700,
            "Parse error: the request body is not valid JSON.", "parse_error", id: null, requestIdHeader: "X-Correlation-Id"));
        Assert.False(error.Headers.Contains("X-Request-Id"));
        Assert.Equal(HttpStatusCode.OK, success.StatusCode);
        Assert.Equal("corr-2", WireAssert.RequestId(success, "X-Correlation-Id"));
        Assert.False(success.Headers.Contains("X-Request-Id"));
    }

    [Fact]
    public async Task Other_paths_are_not_guarded()
    {
        using var response = await Host.PostMcpAsync("{", path: "/other");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.False(response.Headers.Contains("X-Request-Id"));
    }

    internal static void AssertEchoResult(JsonElement message, long id, string text)
    {
        Assert.Equal("2.0", message.GetProperty("jsonrpc").GetString());
        Assert.Equal(id, message.GetProperty("id").GetInt64());
        Assert.False(message.TryGetProperty("error", out _));
        var result = message.GetProperty("result");
        var content = Assert.Single(result.GetProperty("content").EnumerateArray().ToList());
        WireAssert.JsonEquals(new JsonObject { ["type"] = "text", ["text"] = text }.ToJsonString(), content);
        Assert.False(result.TryGetProperty("isError", out var isError) && isError.GetBoolean());
    }

    private static string OversizedEcho(int limit)
    {
        var body = """{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"message":" """.TrimEnd() + new string('m', limit) + "\"}}}";
        Assert.True(Encoding.UTF8.GetByteCount(body) > limit);
        return body;
    }

    private static HttpRequestMessage ChunkedPost(string body)
    {
        // A StreamContent over a non-seekable stream has no length, so HttpClient sends it chunked.
        var content = new StreamContent(new NonSeekableStream(Encoding.UTF8.GetBytes(body)));
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json");
        var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = content };
        request.Headers.TryAddWithoutValidation("Accept", "application/json, text/event-stream");
        request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {DemoKeys.Alice}");
        return request;
    }

    private sealed class NonSeekableStream(byte[] data) : MemoryStream(data, writable: false)
    {
        public override bool CanSeek => false;
    }
}
