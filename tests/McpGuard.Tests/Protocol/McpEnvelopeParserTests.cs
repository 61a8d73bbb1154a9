using System.Text;
using McpGuard.Protocol;

namespace McpGuard.Tests.Protocol;

/// <summary>The envelope parser on its own: what it reads out of a body, and exactly how it refuses one.</summary>
public sealed class McpEnvelopeParserTests
{
    private const int DefaultDepth = 64;

    private const string NotJson = "Parse error: the request body is not valid JSON.";
    private const string NotUtf8 = "Parse error: the request body is not valid UTF-8.";
    private const string Empty = "Parse error: the request body is empty.";
    private const string LoneSurrogate = "Parse error: a string in the JSON-RPC envelope contains an unpaired surrogate escape (\\uD800-\\uDFFF).";
    private const string BadVersion = "Invalid Request: missing or invalid jsonrpc version";
    private const string BadId = "Invalid Request: id must be a string or an integer.";
    private const string BadMethod = "Invalid Request: method must be a string.";
    private const string BadResponse = "Invalid Request: a response needs an id and exactly one of result or error.";
    private const string BadParams = "Invalid Request: params must be an object.";
    private const string RequestWithResult = "Invalid Request: a request cannot carry result or error.";
    private const string Batch = "Invalid Request: batches are not supported; send one JSON-RPC message per POST.";
    private const string InitializeParamsDetail = "Invalid Request: initialize needs params with protocolVersion (a string), capabilities (an object) and clientInfo (an object with name and version strings).";
    private const string NotObject = "Invalid Request: the body must be a JSON-RPC object.";

    private static McpEnvelope Parse(string json, string? protocolVersionHeader = null, int maxDepth = DefaultDepth)
    {
        var ok = McpEnvelopeParser.TryParse(Encoding.UTF8.GetBytes(json), protocolVersionHeader, maxDepth, out var envelope, out var failure);
        Assert.True(ok, $"expected the body to be accepted, got {failure}");
        Assert.Equal(default, failure);
        return envelope!;
    }

    private static EnvelopeFailure Refuse(byte[] body, int maxDepth = DefaultDepth)
    {
        var ok = McpEnvelopeParser.TryParse(body, protocolVersionHeader: null, maxDepth, out var envelope, out var failure);
        Assert.False(ok, "expected the body to be refused");
        Assert.Null(envelope);
        return failure;
    }

    private static EnvelopeFailure Refuse(string json, int maxDepth = DefaultDepth) => Refuse(Encoding.UTF8.GetBytes(json), maxDepth);

    private static EnvelopeFailure ParseError(string detail) => new(McpGuardReasons.ParseError, detail, default);

    private static EnvelopeFailure InvalidRequest(string detail, JsonRpcId id = default) => new(McpGuardReasons.InvalidRequest, detail, id);

    /// <summary>A request whose params hold <paramref name="containers"/> nested containers in total, the root object included.</summary>
    private static string NestedRequest(int containers)
    {
        var inner = containers - 2; // the root object and params itself
        return "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":"
            + new string('[', inner - 1) + "{}" + new string(']', inner - 1) + "}}";
    }

    // ---- what the parser reads ----

    [Fact]
    public void A_request_with_an_integer_id_is_read()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":7,"method":"tools/list"}""");

        Assert.Equal(McpMessageKind.Request, envelope.Kind);
        Assert.Equal(new JsonRpcId(7), envelope.Id);
        Assert.Equal(7L, envelope.Id.ToObject());
        Assert.Equal("tools/list", envelope.Method);
        Assert.Null(envelope.Name);
        Assert.Null(envelope.Uri);
        Assert.Null(envelope.ProtocolVersion);
        Assert.False(envelope.IsToolCall);
        Assert.Null(envelope.ToolName);
        Assert.Null(envelope.RoutingName);
    }

    [Fact]
    public void A_request_with_a_string_id_is_read_and_differs_from_the_same_digits_as_an_integer()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":"7","method":"ping"}""");

        Assert.Equal(McpMessageKind.Request, envelope.Kind);
        Assert.Equal(new JsonRpcId("7"), envelope.Id);
        Assert.Equal("7", envelope.Id.ToObject());
        Assert.NotEqual(new JsonRpcId(7), envelope.Id);
    }

    [Theory]
    [InlineData("0", 0L)]
    [InlineData("-1", -1L)]
    [InlineData("-0", 0L)]
    [InlineData("9223372036854775807", long.MaxValue)]
    [InlineData("-9223372036854775808", long.MinValue)]
    public void Integer_ids_across_the_whole_long_range_are_read(string raw, long expected)
    {
        var envelope = Parse($$"""{"jsonrpc":"2.0","id":{{raw}},"method":"ping"}""");

        Assert.Equal(new JsonRpcId(expected), envelope.Id);
    }

    [Theory]
    [InlineData("\"\"", "")]
    [InlineData("\"a\\\"b\"", "a\"b")]
    [InlineData("\"\\ud83d\\ude00\"", "\U0001F600")]
    [InlineData("\"caf\u00e9\"", "caf\u00e9")]
    public void String_ids_are_unescaped(string raw, string expected)
    {
        var envelope = Parse($$"""{"jsonrpc":"2.0","id":{{raw}},"method":"ping"}""");

        Assert.Equal(new JsonRpcId(expected), envelope.Id);
    }

    [Fact]
    public void A_message_with_a_method_and_no_id_is_a_notification()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","method":"notifications/initialized"}""");

        Assert.Equal(McpMessageKind.Notification, envelope.Kind);
        Assert.True(envelope.Id.IsNone);
        Assert.Null(envelope.Id.ToObject());
        Assert.Same(McpMethods.NotificationsInitialized, envelope.Method);
    }

    [Fact]
    public void A_result_with_an_id_is_a_response()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":"s-1","result":{"roots":[]}}""");

        Assert.Equal(McpMessageKind.Response, envelope.Kind);
        Assert.Equal(new JsonRpcId("s-1"), envelope.Id);
        Assert.Null(envelope.Method);
        Assert.Null(envelope.RoutingName);
        Assert.False(envelope.IsToolCall);
    }

    [Fact]
    public void An_error_with_an_id_is_a_response()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"Method not found"}}""");

        Assert.Equal(McpMessageKind.Response, envelope.Kind);
        Assert.Equal(new JsonRpcId(3), envelope.Id);
        Assert.Null(envelope.Method);
    }

    [Fact]
    public void A_tools_call_exposes_the_tool_name()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"name":"not this one"},"name":"echo"}}""");

        Assert.True(envelope.IsToolCall);
        Assert.Equal("echo", envelope.Name);
        Assert.Equal("echo", envelope.ToolName);
        Assert.Equal("echo", envelope.RoutingName);
        Assert.Null(envelope.Uri);
    }

    [Fact]
    public void A_tools_call_notification_is_not_a_tool_call()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo"}}""");

        Assert.Equal(McpMessageKind.Notification, envelope.Kind);
        Assert.False(envelope.IsToolCall);
        Assert.Null(envelope.ToolName);
        Assert.Equal("echo", envelope.Name);
    }

    [Theory]
    [InlineData("tools/call", "name", "\"params\":{\"name\":{\"x\":1}}")]
    [InlineData("tools/call", "name", "\"params\":{\"name\":5}")]
    [InlineData("tools/call", "name", "\"params\":{\"name\":null}")]
    [InlineData("tools/call", "name", "\"params\":{\"name\":[\"echo\"]}")]
    [InlineData("tools/call", "name", "\"params\":{\"arguments\":{\"name\":\"echo\"}}")]
    [InlineData("tools/call", "name", "\"params\":{}")]
    [InlineData("tools/call", "name", "\"x\":1")]
    [InlineData("prompts/get", "name", "\"params\":{\"name\":true}")]
    [InlineData("resources/read", "uri", "\"params\":{\"uri\":7}")]
    [InlineData("resources/subscribe", "uri", "\"params\":{}")]
    [InlineData("resources/unsubscribe", "uri", "\"params\":{\"name\":\"a://b\"}")]
    public void A_request_without_its_routing_name_as_a_string_is_refused(string method, string member, string rest)
    {
        // The server cannot run it either; refusing it means no gate ever decides on a request with no name.
        Assert.Equal(
            InvalidRequest($"Invalid Request: {method} needs params.{member} as a string.", new JsonRpcId(1)),
            Refuse($$$"""{"jsonrpc":"2.0","id":1,"method":"{{{method}}}",{{{rest}}}}"""));
    }

    [Theory]
    [InlineData("resources/subscribe", "\"params\":{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}", "2026-07-28")]
    [InlineData("resources/unsubscribe", "\"params\":{}", "2026-07-28")]
    [InlineData("resources/subscribe", "\"params\":{\"uri\":5}", "2027-01-01")]
    [InlineData("initialize", "\"params\":{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}", "2026-07-28")]
    [InlineData("initialize", "\"x\":1", "2026-07-28")]
    public void A_method_removed_at_the_header_version_passes_without_the_params_its_old_revision_needed(string method, string rest, string header)
    {
        // The server answers it with 404 Method not found before it reads any params; refusing it with 400 would be
        // McpGuard answering for the server.
        var envelope = Parse($$$"""{"jsonrpc":"2.0","id":1,"method":"{{{method}}}",{{{rest}}}}""", protocolVersionHeader: header);

        Assert.Equal(McpMessageKind.Request, envelope.Kind);
        Assert.Equal(method, envelope.Method);
        Assert.Null(envelope.Uri);
    }

    [Theory]
    [InlineData("resources/subscribe", "\"params\":{}", "2025-11-25")]
    [InlineData("resources/subscribe", "\"params\":{}", null)]
    [InlineData("resources/read", "\"params\":{}", "2026-07-28")]
    public void A_method_the_header_version_still_has_needs_its_routing_name(string method, string rest, string? header)
    {
        var ok = McpEnvelopeParser.TryParse(
            Encoding.UTF8.GetBytes($$$"""{"jsonrpc":"2.0","id":1,"method":"{{{method}}}",{{{rest}}}}"""), header, DefaultDepth, out var envelope, out var failure);

        Assert.False(ok);
        Assert.Null(envelope);
        Assert.Equal(InvalidRequest($"Invalid Request: {method} needs params.uri as a string.", new JsonRpcId(1)), failure);
    }

    [Fact]
    public void Initialize_at_a_revision_before_2026_still_needs_its_params()
    {
        var ok = McpEnvelopeParser.TryParse(
            """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"_meta":{}}}"""u8, "2025-11-25", DefaultDepth, out var envelope, out var failure);

        Assert.False(ok);
        Assert.Null(envelope);
        Assert.Equal(InvalidRequest(InitializeParamsDetail, new JsonRpcId(1)), failure);
    }

    [Fact]
    public void A_notification_needs_no_routing_name()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","method":"tools/call","params":{"name":5}}""");

        Assert.Equal(McpMessageKind.Notification, envelope.Kind);
        Assert.Null(envelope.ToolName);
    }

    [Fact]
    public void A_resources_read_exposes_the_uri_as_its_routing_name()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"file:///notes/a%20b.md"}}""");

        Assert.Same(McpMethods.ResourcesRead, envelope.Method);
        Assert.Equal("file:///notes/a%20b.md", envelope.Uri);
        Assert.Equal("file:///notes/a%20b.md", envelope.RoutingName);
        Assert.Null(envelope.Name);
        Assert.Null(envelope.ToolName);
    }

    [Fact]
    public void A_prompts_get_routes_on_its_name_but_is_not_a_tool_call()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"summary"}}""");

        Assert.Equal("summary", envelope.RoutingName);
        Assert.Null(envelope.ToolName);
    }

    // ---- protocol version ----

    [Fact]
    public void The_protocol_version_header_wins_over_meta_and_initialize_params()
    {
        var envelope = Parse(
            """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2025-11-25"}}}""",
            protocolVersionHeader: "2026-07-28");

        Assert.Equal("2026-07-28", envelope.ProtocolVersion);
    }

    [Fact]
    public void Meta_protocol_version_wins_over_initialize_params()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"},"_meta":{"other":1,"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}""");

        Assert.Equal("2026-07-28", envelope.ProtocolVersion);
    }

    [Fact]
    public void Meta_protocol_version_applies_to_any_method()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}""");

        Assert.Equal("2026-07-28", envelope.ProtocolVersion);
    }

    [Fact]
    public void Initialize_params_protocol_version_is_used_when_nothing_else_declares_one()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}""", protocolVersionHeader: "");

        Assert.Equal("2025-06-18", envelope.ProtocolVersion);
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":20250618,"capabilities":{},"clientInfo":{"name":"c","version":"1"}}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{}}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":9,"clientInfo":{"name":"c","version":"1"}}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c"}}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","VERSION":"1"}}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":"c"}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"initialize"}""")]
    public void Initialize_params_the_SDK_transport_cannot_bind_are_refused(string json)
    {
        // The SDK binds them before it can answer with a JSON-RPC error: unchecked, they fail the endpoint with a 500.
        Assert.Equal(
            InvalidRequest(InitializeParamsDetail, new JsonRpcId(1)),
            Refuse(json));
    }

    [Fact]
    public void Params_protocol_version_of_a_method_other_than_initialize_is_ignored()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"protocolVersion":"2025-06-18"}}""");

        Assert.Null(envelope.ProtocolVersion);
    }

    [Fact]
    public void Non_string_protocol_versions_are_ignored()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"protocolVersion":20250618,"_meta":{"io.modelcontextprotocol/protocolVersion":{"v":1}}}}""");

        Assert.Null(envelope.ProtocolVersion);
    }

    [Fact]
    public void Meta_that_is_not_an_object_is_skipped()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":["io.modelcontextprotocol/protocolVersion"],"name":"echo"}}""");

        Assert.Null(envelope.ProtocolVersion);
        Assert.Equal("echo", envelope.Name);
    }

    [Theory]
    [InlineData("2024-11-05")]
    [InlineData("2025-03-26")]
    [InlineData("2025-06-18")]
    [InlineData("2025-11-25")]
    [InlineData("2026-07-28")]
    public void Published_protocol_versions_come_back_as_interned_strings(string version)
    {
        var fromInitialize = Parse("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"VERSION","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}""".Replace("VERSION", version, StringComparison.Ordinal));
        var fromMeta = Parse("""{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"VERSION"}}}""".Replace("VERSION", version, StringComparison.Ordinal));

        // Theory data arrives as a copy; the interned literal is the one the parser hands out.
        var interned = string.Intern(version);
        Assert.True(ReferenceEquals(interned, fromInitialize.ProtocolVersion), $"initialize's '{version}' was not interned");
        Assert.True(ReferenceEquals(interned, fromMeta.ProtocolVersion), $"_meta's '{version}' was not interned");
    }

    [Fact]
    public void An_unpublished_or_escaped_protocol_version_is_read_as_written()
    {
        var unknown = Parse("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2099-01-01","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}""");
        var escaped = Parse("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025\u002d06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}""");

        Assert.Equal("2099-01-01", unknown.ProtocolVersion);
        Assert.Equal("2025-06-18", escaped.ProtocolVersion);
    }

    // ---- method interning and escapes ----

    public static TheoryData<string> KnownMethods()
    {
        var data = new TheoryData<string>();
        foreach (var field in typeof(McpMethods).GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static))
        {
            if (field.IsLiteral)
            {
                data.Add((string)field.GetRawConstantValue()!);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(KnownMethods))]
    public void Known_method_names_come_back_as_the_interned_constant(string method)
    {
        // Methods routed on a name or uri need one, and initialize its own params; the others ignore them.
        var envelope = Parse($$$"""{"jsonrpc":"2.0","id":1,"method":"{{{method}}}","params":{"name":"n","uri":"u://x","protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"} } }""");

        // Theory data arrives as a copy; the constant itself is the interned literal.
        var constant = string.Intern(method);
        Assert.Same(McpMethods.Ping, string.Intern("ping"));
        Assert.True(ReferenceEquals(constant, envelope.Method), $"'{method}' was not the McpMethods constant");
    }

    [Fact]
    public void An_unknown_method_is_read_as_written()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":1,"method":"vendor/custom"}""");

        Assert.Equal("vendor/custom", envelope.Method);
    }

    [Fact]
    public void An_escaped_method_value_is_unescaped()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":1,"method":"tools\/c\u0061ll","params":{"name":"echo"}}""");

        Assert.Equal(McpMethods.ToolsCall, envelope.Method);
        Assert.True(envelope.IsToolCall);
        Assert.Equal("echo", envelope.ToolName);
    }

    [Fact]
    public void Escaped_property_names_are_recognised()
    {
        var envelope = Parse("""{"js\u006Fnrpc":"2.0","\u0069d":5,"met\u0068od":"tools/call","p\u0061rams":{"n\u0061me":"echo"}}""");

        Assert.Equal(McpMessageKind.Request, envelope.Kind);
        Assert.Equal(new JsonRpcId(5), envelope.Id);
        Assert.Same(McpMethods.ToolsCall, envelope.Method);
        Assert.Equal("echo", envelope.ToolName);
    }

    [Fact]
    public void An_escaped_uri_property_name_is_recognised()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":5,"method":"resources/read","params":{"\u0075ri":"mem://x"}}""");

        Assert.Equal("mem://x", envelope.Uri);
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":1,"Method":"ping"}""", "Method", "method")]
    [InlineData("""{"JSONRPC":"2.0","jsonrpc":"2.0","id":1,"method":"ping"}""", "JSONRPC", "jsonrpc")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","Params":{"name":"echo"},"params":{"name":"echo"}}""", "Params", "params")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping","Result":{}}""", "Result", "result")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"premium_report"}}""", "params.Name", "name")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"premium_report","x":1}}""", "params.NAME", "name")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"N\u0061ME":"premium_report"}}""", "params.NaME", "name")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"Uri":"a://b"}}""", "params.Uri", "uri")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_META":{}}}""", "params._META", "_meta")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"Arguments":{}}}""", "params.Arguments", "arguments")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolversion":"2025-06-18"}}""", "params.protocolversion", "protocolVersion")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"IO.modelcontextprotocol/protocolVersion":"2026-07-28"}}}""", "params._meta.IO.modelcontextprotocol/protocolVersion", "io.modelcontextprotocol/protocolVersion")]
    public void A_member_the_guard_reads_must_be_spelled_exactly(string json, string display, string spelledAs)
    {
        // A reader that matches names ignoring case (the C# SDK's) would read it; one that does not would not.
        Assert.Equal(InvalidRequest($"Invalid Request: member '{display}' must be spelled '{spelledAs}'.", new JsonRpcId(1)), Refuse(json));
    }

    [Fact]
    public void Case_variants_of_members_the_guard_does_not_read_pass()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":1,"method":"tools/call","Extra":1,"params":{"name":"echo","Cursor":"c","arguments":{"Name":"x","URI":"y"},"_meta":{"ProgressToken":1}}}""");

        Assert.Equal("echo", envelope.ToolName);
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Name":"premium_report"}}""", "params.name", "params.Name")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1,"A":2}}}""", "a", "A")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"list":[{"k":1},{"Key":1,"kEy":2}]}}}""", "Key", "kEy")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"x":{"Vendor":1,"vendor":2},"method":"ping"}""", "Vendor", "vendor")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"trace":1,"TRACE":2}}}""", "params._meta.trace", "params._meta.TRACE")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping","params":{"\u00e9t\u00e9":1,"\u00c9T\u00c9":2}}""", "params.été", "params.ÉTÉ")]
    public void Two_members_of_one_object_that_differ_only_in_letter_case_are_refused_at_any_depth(string json, string first, string second)
    {
        Assert.Equal(InvalidRequest($"Invalid Request: members '{first}' and '{second}' differ only in letter case.", new JsonRpcId(1)), Refuse(json));
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1,"a":2}}}""", "a")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1},"arguments":{"b":2}}}""", "params.arguments")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"deep":{"deeper":[{"x":1,"\u0078":2}]}}}}""", "x")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"result":{"content":[],"content":[]}}""", "content")]
    public void Duplicate_members_are_refused_at_any_depth(string json, string member)
    {
        Assert.Equal(InvalidRequest($"Invalid Request: duplicate member '{member}'.", new JsonRpcId(1)), Refuse(json));
    }

    [Fact]
    public void Equal_names_in_sibling_or_nested_objects_are_not_duplicates()
    {
        var envelope = Parse("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"name":{"name":1},"list":[{"name":1},{"name":2}]}}}""");

        Assert.Equal("echo", envelope.ToolName);
    }

    [Fact]
    public void Large_objects_are_checked_for_case_clashes_too()
    {
        var members = string.Join(",", Enumerable.Range(0, 200).Select(i => $"\"k{i}\":{i}"));
        Assert.Equal("echo", Parse($$$$"""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{{{{{members}}}}}}}""").ToolName);

        Assert.Equal(
            InvalidRequest("Invalid Request: members 'k5' and 'K5' differ only in letter case.", new JsonRpcId(1)),
            Refuse($$$$"""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{{{{{members}}}},"K5":0}}}"""));
        Assert.Equal(
            InvalidRequest("Invalid Request: duplicate member 'k150'.", new JsonRpcId(1)),
            Refuse($$$$"""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{{{{{members}}}},"k\u0031\u00350":0}}}"""));
    }

    // ---- unknown members ----

    [Fact]
    public void Unknown_members_anywhere_are_skipped_whatever_their_shape()
    {
        var envelope = Parse("""
            {
              "x-vendor": {"deep": [1, 2, {"method": "tools/call", "id": 99}], "n": null},
              "jsonrpc": "2.0",
              "extra": [[["params"]]],
              "id": 1,
              "method": "tools/call",
              "params": {
                "arguments": {"name": "not the tool", "uri": "not the uri", "params": {"name": "no"}},
                "name": "echo",
                "task": {"ttl": 1000},
                "_meta": {"progressToken": 5, "nested": {"io.modelcontextprotocol/protocolVersion": "1999-01-01"}}
              },
              "trailing": true
            }
            """);

        Assert.Equal(new JsonRpcId(1), envelope.Id);
        Assert.Equal("echo", envelope.ToolName);
        Assert.Null(envelope.Uri);
        Assert.Null(envelope.ProtocolVersion);
    }

    [Fact]
    public void Whitespace_around_the_message_is_allowed()
    {
        var envelope = Parse(" \r\n\t{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"} \r\n\t");

        Assert.Same(McpMethods.Ping, envelope.Method);
    }

    // ---- id echo on failures ----

    [Fact]
    public void A_cleanly_read_id_is_echoed_when_the_version_is_wrong()
    {
        Assert.Equal(InvalidRequest(BadVersion, new JsonRpcId(5)), Refuse("""{"jsonrpc":"1.0","id":5,"method":"ping"}"""));
    }

    [Fact]
    public void A_string_id_is_echoed_when_the_method_is_wrong()
    {
        Assert.Equal(InvalidRequest(BadMethod, new JsonRpcId("abc")), Refuse("""{"jsonrpc":"2.0","id":"abc","method":42}"""));
    }

    [Fact]
    public void An_id_read_before_a_structural_problem_is_echoed()
    {
        Assert.Equal(InvalidRequest(BadParams, new JsonRpcId(9)), Refuse("""{"jsonrpc":"2.0","id":9,"method":"tools/call","params":"echo"}"""));
    }

    [Fact]
    public void An_id_read_after_a_structural_problem_is_echoed()
    {
        Assert.Equal(InvalidRequest(BadParams, new JsonRpcId(9)), Refuse("""{"jsonrpc":"2.0","params":[],"method":"tools/call","id":9}"""));
    }

    [Fact]
    public void An_id_that_could_not_be_read_is_not_echoed_even_when_the_version_is_wrong()
    {
        Assert.Equal(InvalidRequest(BadVersion), Refuse("""{"jsonrpc":"1.0","id":1.5,"method":"ping"}"""));
    }

    [Fact]
    public void An_id_is_never_echoed_on_a_parse_error()
    {
        Assert.Equal(ParseError(NotJson), Refuse("""{"jsonrpc":"2.0","id":5,"method":"ping",}"""));
    }

    [Theory]
    [InlineData("true")]
    [InlineData("false")]
    [InlineData("null")]
    [InlineData("1.5")]
    [InlineData("1.0")]
    [InlineData("1e3")]
    [InlineData("9223372036854775808")]
    [InlineData("-9223372036854775809")]
    [InlineData("[1]")]
    [InlineData("{\"id\":1}")]
    public void An_id_that_is_not_a_string_or_an_integer_is_refused_without_an_echo(string raw)
    {
        Assert.Equal(InvalidRequest(BadId), Refuse($$"""{"jsonrpc":"2.0","id":{{raw}},"method":"ping"}"""));
    }

    // ---- envelope field types ----

    [Theory]
    [InlineData("""{"id":1,"method":"ping"}""")]
    [InlineData("""{"jsonrpc":"1.0","id":1,"method":"ping"}""")]
    [InlineData("""{"jsonrpc":"2.0 ","id":1,"method":"ping"}""")]
    [InlineData("""{"jsonrpc":"2","id":1,"method":"ping"}""")]
    [InlineData("""{"jsonrpc":2.0,"id":1,"method":"ping"}""")]
    [InlineData("""{"jsonrpc":null,"id":1,"method":"ping"}""")]
    [InlineData("""{"jsonrpc":{"v":"2.0"},"id":1,"method":"ping"}""")]
    [InlineData("""{"jsonrpc":["2.0"],"id":1,"method":"ping"}""")]
    public void A_missing_or_wrong_jsonrpc_version_is_refused(string json)
    {
        Assert.Equal(InvalidRequest(BadVersion, new JsonRpcId(1)), Refuse(json));
    }

    [Fact]
    public void An_escaped_jsonrpc_version_is_accepted()
    {
        Assert.Same(McpMethods.Ping, Parse("""{"jsonrpc":"\u0032.0","id":1,"method":"ping"}""").Method);
    }

    [Theory]
    [InlineData("1")]
    [InlineData("null")]
    [InlineData("true")]
    [InlineData("[\"ping\"]")]
    [InlineData("{\"name\":\"ping\"}")]
    public void A_method_that_is_not_a_string_is_refused(string raw)
    {
        Assert.Equal(InvalidRequest(BadMethod, new JsonRpcId(1)), Refuse($$"""{"jsonrpc":"2.0","id":1,"method":{{raw}}}"""));
    }

    [Theory]
    [InlineData("\"echo\"")]
    [InlineData("1")]
    [InlineData("[]")]
    [InlineData("[{\"name\":\"echo\"}]")]
    [InlineData("true")]
    [InlineData("null")]
    public void Params_that_are_not_an_object_are_refused(string raw)
    {
        Assert.Equal(InvalidRequest(BadParams, new JsonRpcId(1)), Refuse($$"""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{raw}}}"""));
    }

    [Fact]
    public void A_request_cannot_carry_a_result()
    {
        Assert.Equal(InvalidRequest(RequestWithResult, new JsonRpcId(1)), Refuse("""{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}"""));
    }

    [Fact]
    public void A_notification_cannot_carry_an_error()
    {
        Assert.Equal(InvalidRequest(RequestWithResult), Refuse("""{"jsonrpc":"2.0","error":{"code":1,"message":"x"},"method":"ping"}"""));
    }

    [Fact]
    public void A_response_without_an_id_is_refused()
    {
        Assert.Equal(InvalidRequest(BadResponse), Refuse("""{"jsonrpc":"2.0","result":{}}"""));
    }

    [Fact]
    public void A_response_with_both_result_and_error_is_refused()
    {
        Assert.Equal(InvalidRequest(BadResponse, new JsonRpcId(4)), Refuse("""{"jsonrpc":"2.0","id":4,"result":{},"error":{"code":1,"message":"x"}}"""));
    }

    [Fact]
    public void A_message_with_neither_method_nor_result_is_refused()
    {
        Assert.Equal(InvalidRequest(BadMethod, new JsonRpcId(4)), Refuse("""{"jsonrpc":"2.0","id":4}"""));
    }

    // ---- duplicates ----

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"ping"}""", "jsonrpc")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}""", "method")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping","met\u0068od":"tools/call"}""", "method")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b"}}""", "params")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}""", "params.name")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","n\u0061me":"a"}}""", "params.name")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a://1","uri":"a://2"}}""", "params.uri")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"result":{},"result":{}}""", "result")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"error":{},"error":{}}""", "error")]
    public void A_duplicate_envelope_member_is_refused_and_the_id_echoed(string json, string member)
    {
        Assert.Equal(InvalidRequest($"Invalid Request: duplicate member '{member}'.", new JsonRpcId(1)), Refuse(json));
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"id":1,"method":"ping"}""")]
    [InlineData("""{"jsonrpc":"2.0","id":"a","\u0069d":"b","method":"ping"}""")]
    [InlineData("""{"jsonrpc":"2.0","params":5,"id":1,"id":2,"method":"ping"}""")]
    public void A_duplicate_id_is_refused_without_an_echo_because_neither_can_be_trusted(string json)
    {
        var failure = Refuse(json);

        Assert.Equal(McpGuardReasons.InvalidRequest, failure.Reason);
        Assert.True(failure.Id.IsNone, $"echoed {failure.Id}");
    }

    [Fact]
    public void A_duplicate_id_reports_the_duplicate()
    {
        Assert.Equal(InvalidRequest("Invalid Request: duplicate member 'id'."), Refuse("""{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"""));
    }

    [Fact]
    public void The_first_structural_problem_is_the_one_reported()
    {
        Assert.Equal(
            InvalidRequest("Invalid Request: duplicate member 'method'.", new JsonRpcId(1)),
            Refuse("""{"jsonrpc":"2.0","id":1,"method":"a","method":"b","params":"x","params":{}}"""));
    }

    [Fact]
    public void Duplicate_names_in_different_params_objects_are_reported_as_a_duplicate_params()
    {
        Assert.Equal(
            InvalidRequest("Invalid Request: duplicate member 'params'.", new JsonRpcId(1)),
            Refuse("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"},"params":{"name":"b","name":"c"}}"""));
    }

    // ---- parse errors ----

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping"} {}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"ping"}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping"}x""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping"}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping"}]""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping"} 1""")]
    [InlineData("""[] []""")]
    [InlineData("""1 2""")]
    public void Trailing_content_is_a_parse_error(string json)
    {
        Assert.Equal(ParseError(NotJson), Refuse(json));
    }

    [Theory]
    [InlineData(new byte[] { 0xFF })]
    [InlineData(new byte[] { 0xC0, 0xAF })]
    [InlineData(new byte[] { 0xED, 0xA0, 0x80 })]
    [InlineData(new byte[] { 0xE2, 0x82 })]
    [InlineData(new byte[] { 0xF4, 0x90, 0x80, 0x80 })]
    public void Invalid_utf8_in_a_string_is_a_parse_error(byte[] bad)
    {
        byte[] body = [.. "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi"u8, .. bad, .. "ng\"}"u8];

        Assert.Equal(ParseError(NotUtf8), Refuse(body));
    }

    [Fact]
    public void Invalid_utf8_in_a_string_the_parser_skips_is_a_parse_error()
    {
        byte[] body = [.. "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\""u8, 0xC3, 0x28, .. "\"}}}"u8];

        Assert.Equal(ParseError(NotUtf8), Refuse(body));
    }

    [Fact]
    public void Invalid_utf8_between_members_is_reported_as_invalid_utf8_not_invalid_json()
    {
        byte[] body = [.. "{\"jsonrpc\":\"2.0\","u8, 0x80, .. "\"id\":1,\"method\":\"ping\"}"u8];

        Assert.Equal(ParseError(NotUtf8), Refuse(body));
    }

    [Theory]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData(" \r\n\t ")]
    public void An_empty_or_blank_body_is_a_parse_error_that_says_so(string body)
    {
        Assert.Equal(ParseError(Empty), Refuse(body));
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping",}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping" // c""")]
    [InlineData("""{"jsonrpc":"2.0",/* c */"id":1,"method":"ping"}""")]
    [InlineData("""{'jsonrpc':'2.0','id':1,'method':'ping'}""")]
    [InlineData("""{"jsonrpc":"2.0","id":NaN,"method":"ping"}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":Infinity}}""")]
    [InlineData("""{jsonrpc:"2.0","id":1,"method":"ping"}""")]
    [InlineData("""{"jsonrpc":"2.0","id":01,"method":"ping"}""")]
    [InlineData("""{"jsonrpc":"2.0","id":"\x","method":"ping"}""")]
    [InlineData("{\"jsonrpc\":\"2.0\",\"id\":\"a\tb\",\"method\":\"ping\"}")]
    [InlineData("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"\0}")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping\u00""")]
    [InlineData("""{""")]
    [InlineData("""[""")]
    [InlineData("""[{"jsonrpc":"2.0","id":1,"method":"ping"}""")]
    [InlineData("\uFEFF{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}")]
    public void Malformed_json_is_a_parse_error(string json)
    {
        Assert.Equal(ParseError(NotJson), Refuse(json));
    }

    [Fact]
    public void Nesting_up_to_the_maximum_depth_is_accepted()
    {
        Assert.Equal("echo", Parse(NestedRequest(DefaultDepth)).ToolName);
        Assert.Equal("echo", Parse(NestedRequest(5), maxDepth: 5).ToolName);
    }

    [Fact]
    public void Nesting_beyond_the_maximum_depth_is_a_parse_error()
    {
        Assert.Equal(ParseError(NotJson), Refuse(NestedRequest(DefaultDepth + 1)));
        Assert.Equal(ParseError(NotJson), Refuse(NestedRequest(6), maxDepth: 5));
        Assert.Equal(ParseError(NotJson), Refuse(NestedRequest(1000)));
    }

    [Fact]
    public void A_deeply_nested_batch_is_a_parse_error_not_a_batch_refusal()
    {
        Assert.Equal(ParseError(NotJson), Refuse(new string('[', 100) + new string(']', 100)));
    }

    // ---- lone surrogates ----

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":"\ud800","method":"ping"}""")]
    [InlineData("""{"jsonrpc":"2.0","id":"\udc00x","method":"ping"}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call\ud83d"}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ude00echo"}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a://\ud800"}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"\ud800"}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"\udfff"}}}""")]
    public void An_unpaired_surrogate_escape_in_an_envelope_string_is_a_parse_error(string json)
    {
        Assert.Equal(ParseError(LoneSurrogate), Refuse(json));
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"\ud800"}}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"ok \udbff\u0041"}}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"\udc00":"key"}}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"list":["a",["\ud83d\n"]]}}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"x-vendor":"\ud800","method":"ping"}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"result":{"text":"\udfff\ud800"}}""")]
    public void An_unpaired_surrogate_escape_anywhere_is_a_parse_error(string json)
    {
        // Decoders disagree on such strings (replace, refuse, or pass through): no reading of them can be trusted.
        Assert.Equal(ParseError(LoneSurrogate), Refuse(json));
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"m":"\ud83d\ude00 \uD83D\uDE00 \\ud800 \\\ud83d\ude00"}}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud83d\ude00","arguments":{"\ud83d\ude00":"\u00e9\n\t\""}}}""")]
    public void Surrogate_pairs_and_escaped_backslashes_are_accepted(string json)
    {
        Assert.Equal(McpMessageKind.Request, Parse(json).Kind);
    }

    // ---- not a single object ----

    [Theory]
    [InlineData("[]")]
    [InlineData("""[{"jsonrpc":"2.0","id":1,"method":"ping"}]""")]
    [InlineData("""[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]""")]
    [InlineData(" [ 1 ] ")]
    public void A_batch_is_refused(string json)
    {
        Assert.Equal(InvalidRequest(Batch), Refuse(json));
    }

    [Theory]
    [InlineData("\"ping\"")]
    [InlineData("1")]
    [InlineData("-1.5e3")]
    [InlineData("null")]
    [InlineData("true")]
    [InlineData("false")]
    public void A_top_level_value_that_is_not_an_object_is_refused(string json)
    {
        Assert.Equal(InvalidRequest(NotObject), Refuse(json));
    }

    [Fact]
    public void An_empty_object_is_refused_for_its_version_first()
    {
        Assert.Equal(InvalidRequest(BadVersion), Refuse("{}"));
    }
}
