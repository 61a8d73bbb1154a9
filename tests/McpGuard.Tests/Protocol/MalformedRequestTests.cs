using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace McpGuard.Tests.Protocol;

/// <summary>
/// A host with McpGuard in front of an endpoint that only counts: every malformed body must be refused by the
/// guard, with the exact status and error a client would see, and none may reach the endpoint.
/// </summary>
public sealed class CountingEndpointHost : IAsyncLifetime
{
    private int _reached;

    public GuardedHost Host { get; private set; } = null!;

    public int Reached => Volatile.Read(ref _reached);

    public async Task InitializeAsync() =>
        Host = await GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(),
            app =>
            {
                app.UseMcpGuard();
                app.MapPost("/mcp", () =>
                {
                    Interlocked.Increment(ref _reached);
                    return Results.Text("""{"reached":true}""", "application/json");
                });
            });

    public async Task DisposeAsync() => await Host.DisposeAsync();
}

/// <summary>Runs the table's rows first and the facts that check what the table left behind last.</summary>
public sealed class TableFirstOrderer : ITestCaseOrderer
{
    public IEnumerable<TTestCase> OrderTestCases<TTestCase>(IEnumerable<TTestCase> testCases)
        where TTestCase : ITestCase =>
        testCases
            .OrderBy(c => c.TestMethod.Method.Name.StartsWith("After_the_table", StringComparison.Ordinal) ? 1 : 0)
            .ThenBy(c => c.TestMethod.Method.Name, StringComparer.Ordinal)
            .ThenBy(c => c.DisplayName, StringComparer.Ordinal);
}

[TestCaseOrderer("McpGuard.Tests.Protocol.TableFirstOrderer", "McpGuard.Tests")]
public sealed class MalformedRequestTests(CountingEndpointHost fixture) : IClassFixture<CountingEndpointHost>
{
    private const long BodyLimit = 1024 * 1024; // McpGuardOptions.MaxRequestBodySize's default

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
    private const string NotObject = "Invalid Request: the body must be a JSON-RPC object.";
    private const string TooLarge = "Payload Too Large: the request body exceeds 1048576 bytes.";

    private static string Duplicate(string member) => $"Invalid Request: duplicate member '{member}'.";

    /// <summary>One malformed request and everything the client must see for it. <see cref="Id"/> is the raw JSON of the echoed id.</summary>
    public sealed record Row(string Name, Func<byte[]> Body, int Status, int Code, string Reason, string Id, string Message, bool Chunked = false);

    private static Row Parse(string name, string body, string message = NotJson) =>
        new(name, () => Encoding.UTF8.GetBytes(body), 400, -32700, "parse_error", "null", message);

    private static Row ParseBytes(string name, Func<byte[]> body, string message) =>
        new(name, body, 400, -32700, "parse_error", "null", message);

    private static Row Invalid(string name, string body, string id, string message) =>
        new(name, () => Encoding.UTF8.GetBytes(body), 400, -32600, "invalid_request", id, message);

    private static byte[] Bytes(params object[] parts)
    {
        var bytes = new List<byte>();
        foreach (var part in parts)
        {
            switch (part)
            {
                case string text:
                    bytes.AddRange(Encoding.UTF8.GetBytes(text));
                    break;
                case byte single:
                    bytes.Add(single);
                    break;
                case int value:
                    bytes.Add(checked((byte)value));
                    break;
                default:
                    throw new ArgumentException($"unexpected part {part}");
            }
        }

        return [.. bytes];
    }

    private const string EchoPrefix = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"";
    private const string EchoSuffix = "\"}}}";

    /// <summary>A tools/call whose message argument pads the body to exactly <paramref name="length"/> bytes.</summary>
    internal static byte[] EchoOfLength(long length)
    {
        var padding = (int)length - EchoPrefix.Length - EchoSuffix.Length;
        return Encoding.UTF8.GetBytes(EchoPrefix + new string('x', padding) + EchoSuffix);
    }

    private static string Nested(string open, string close, int levels) =>
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"deep\":"
        + string.Concat(Enumerable.Repeat(open, levels)) + "1" + string.Concat(Enumerable.Repeat(close, levels)) + "}}}";

    private const string Valid = """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}""";

    public static readonly IReadOnlyList<Row> Rows =
    [
        // Truncated at several points.
        Parse("truncated_after_the_opening_brace", "{"),
        Parse("truncated_inside_a_property_name", """{"jsonr"""),
        Parse("truncated_after_a_colon", """{"jsonrpc":"""),
        Parse("truncated_inside_a_string_value", """{"jsonrpc":"2.0","id":1,"method":"tools/ca"""),
        Parse("truncated_inside_a_number", """{"jsonrpc":"2.0","id":12"""),
        Parse("truncated_inside_an_escape", """{"jsonrpc":"2.0","id":"\u00"""),
        Parse("truncated_inside_params", """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"""),
        Parse("truncated_before_the_final_brace", Valid[..^1]),
        Parse("truncated_after_a_comma", """{"jsonrpc":"2.0","id":1,"""),
        Parse("truncated_literal", """{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":tru"""),

        // Invalid UTF-8, in a string and in the structure.
        ParseBytes("invalid_utf8_in_a_string", () => Bytes("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi", 0xFF, "ng\"}"), NotUtf8),
        ParseBytes("invalid_utf8_in_an_argument_string", () => Bytes(EchoPrefix, 0xC3, 0x28, EchoSuffix), NotUtf8),
        ParseBytes("invalid_utf8_between_members", () => Bytes("{\"jsonrpc\":\"2.0\",", 0x80, "\"id\":1,\"method\":\"ping\"}"), NotUtf8),
        ParseBytes("invalid_utf8_as_the_first_byte", () => Bytes(0xFE, Valid), NotUtf8),
        ParseBytes("overlong_utf8_slash_in_the_method", () => Bytes("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools", 0xC0, 0xAF, "call\"}"), NotUtf8),
        ParseBytes("overlong_utf8_quote_as_structure", () => Bytes("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":", 0xC0, 0xA2, "ping", 0xC0, 0xA2, "}"), NotUtf8),
        ParseBytes("overlong_utf8_three_byte_nul", () => Bytes("{\"jsonrpc\":\"2.0\",\"id\":\"a", 0xE0, 0x80, 0x80, "\",\"method\":\"ping\"}"), NotUtf8),
        ParseBytes("utf8_encoded_surrogate", () => Bytes("{\"jsonrpc\":\"2.0\",\"id\":\"", 0xED, 0xA0, 0x80, "\",\"method\":\"ping\"}"), NotUtf8),
        ParseBytes("utf8_sequence_cut_at_the_end", () => Bytes(Valid, 0xE2, 0x82), NotUtf8),

        // Lone surrogate escapes: valid JSON grammar, but no UTF-16 string can be read from them.
        Parse("lone_high_surrogate_escape_in_the_id", """{"jsonrpc":"2.0","id":"\ud800","method":"ping"}""", LoneSurrogate),
        Parse("lone_low_surrogate_escape_in_the_method", """{"jsonrpc":"2.0","id":1,"method":"tools/call\udc00","params":{"name":"echo"}}""", LoneSurrogate),
        Parse("lone_surrogate_escape_in_the_tool_name", """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud83decho"}}""", LoneSurrogate),
        Parse("reversed_surrogate_pair_in_the_resource_uri", """{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a://\ude00\ud83d"}}""", LoneSurrogate),

        // Nesting.
        Parse("1000_nested_arrays_in_params", Nested("[", "]", 1000)),
        Parse("1000_nested_objects_in_params", Nested("{\"a\":", "}", 1000)),
        Parse("one_level_deeper_than_the_default_limit", Nested("[", "]", 62)),

        // Size.
        ParseBytes("huge_string_at_the_limit_but_truncated", () => EchoOfLength(BodyLimit)[..^1], NotJson),
        ParseBytes("huge_string_at_the_limit_with_invalid_utf8_at_the_end", () => [.. EchoOfLength(BodyLimit)[..^(EchoSuffix.Length + 1)], 0xFF, .. Encoding.UTF8.GetBytes(EchoSuffix)], NotUtf8),
        new("huge_string_one_byte_over_the_limit", () => EchoOfLength(BodyLimit + 1), 413, -32600, "payload_too_large", "null", TooLarge),
        new("huge_string_over_the_limit_without_content_length", () => EchoOfLength(BodyLimit + 4096), 413, -32600, "payload_too_large", "null", TooLarge, Chunked: true),

        // Wrong types for every envelope field.
        Invalid("jsonrpc_number", """{"jsonrpc":2.0,"id":1,"method":"ping"}""", "1", BadVersion),
        Invalid("jsonrpc_null", """{"jsonrpc":null,"id":1,"method":"ping"}""", "1", BadVersion),
        Invalid("jsonrpc_object", """{"jsonrpc":{"version":"2.0"},"id":1,"method":"ping"}""", "1", BadVersion),
        Invalid("jsonrpc_wrong_version", """{"jsonrpc":"1.0","id":"v","method":"ping"}""", "\"v\"", BadVersion),
        Invalid("jsonrpc_missing", """{"id":1,"method":"ping"}""", "1", BadVersion),
        Invalid("id_bool", """{"jsonrpc":"2.0","id":true,"method":"ping"}""", "null", BadId),
        Invalid("id_array", """{"jsonrpc":"2.0","id":[1],"method":"ping"}""", "null", BadId),
        Invalid("id_object", """{"jsonrpc":"2.0","id":{"n":1},"method":"ping"}""", "null", BadId),
        Invalid("id_null", """{"jsonrpc":"2.0","id":null,"method":"ping"}""", "null", BadId),
        Invalid("id_float", """{"jsonrpc":"2.0","id":1.5,"method":"ping"}""", "null", BadId),
        Invalid("id_exponent", """{"jsonrpc":"2.0","id":1e3,"method":"ping"}""", "null", BadId),
        Invalid("id_beyond_long", """{"jsonrpc":"2.0","id":9223372036854775808,"method":"ping"}""", "null", BadId),
        Invalid("id_huge_number", """{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}""", "null", BadId),
        Invalid("method_number", """{"jsonrpc":"2.0","id":1,"method":42}""", "1", BadMethod),
        Invalid("method_null", """{"jsonrpc":"2.0","id":1,"method":null}""", "1", BadMethod),
        Invalid("method_array", """{"jsonrpc":"2.0","id":1,"method":["tools/call"]}""", "1", BadMethod),
        Invalid("method_object", """{"jsonrpc":"2.0","id":"m","method":{"name":"tools/call"}}""", "\"m\"", BadMethod),
        Invalid("params_string", """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"echo"}""", "1", BadParams),
        Invalid("params_number", """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":7}""", "1", BadParams),
        Invalid("params_array", """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[{"name":"echo"}]}""", "1", BadParams),
        Invalid("params_true", """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":true}""", "1", BadParams),
        Invalid("params_null", """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}""", "1", BadParams),

        // Batches.
        Invalid("batch_empty", "[]", "null", Batch),
        Invalid("batch_of_one_valid_request", $"[{Valid}]", "null", Batch),
        Invalid("batch_of_valid_requests", """[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]""", "null", Batch),

        // Nothing at all.
        Parse("empty_body", "", Empty),
        Parse("whitespace_only_body", " \r\n\t ", Empty),

        // Duplicate keys.
        Invalid("duplicate_jsonrpc", """{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"ping"}""", "1", Duplicate("jsonrpc")),
        Invalid("duplicate_method_with_different_values", """{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"echo"}}""", "1", Duplicate("method")),
        Invalid("duplicate_method_with_an_escaped_name", """{"jsonrpc":"2.0","id":1,"method":"ping","met\u0068od":"tools/call"}""", "1", Duplicate("method")),
        Invalid("duplicate_id", """{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}""", "null", Duplicate("id")),
        Invalid("duplicate_params", """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"params":{"name":"premium_report"}}""", "1", Duplicate("params")),
        Invalid("duplicate_params_name", """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","name":"premium_report"}}""", "1", Duplicate("params.name")),
        Invalid("duplicate_params_uri", """{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"a://1","uri":"a://2"}}""", "1", Duplicate("params.uri")),

        // Top-level values that are not an object.
        Invalid("top_level_string", "\"tools/call\"", "null", NotObject),
        Invalid("top_level_number", "1", "null", NotObject),
        Invalid("top_level_null", "null", "null", NotObject),
        Invalid("top_level_true", "true", "null", NotObject),

        // Not JSON, though some parsers take it.
        Parse("line_comment", "{\"jsonrpc\":\"2.0\", // version\n\"id\":1,\"method\":\"ping\"}"),
        Parse("block_comment", """{"jsonrpc":"2.0",/* version */"id":1,"method":"ping"}"""),
        Parse("trailing_comma_in_the_object", """{"jsonrpc":"2.0","id":1,"method":"ping",}"""),
        Parse("trailing_comma_in_an_array", """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"list":[1,2,]}}}"""),
        Parse("single_quotes", """{'jsonrpc':'2.0','id':1,'method':'ping'}"""),
        Parse("unquoted_keys", """{jsonrpc:"2.0",id:1,method:"ping"}"""),
        Parse("nan_literal", """{"jsonrpc":"2.0","id":NaN,"method":"ping"}"""),
        Parse("infinity_literal", """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"n":Infinity}}}"""),
        Parse("negative_infinity_literal", """{"jsonrpc":"2.0","id":-Infinity,"method":"ping"}"""),
        Parse("leading_zero_number", """{"jsonrpc":"2.0","id":007,"method":"ping"}"""),
        Parse("invalid_escape", """{"jsonrpc":"2.0","id":"\q","method":"ping"}"""),
        Parse("raw_tab_in_a_string", "{\"jsonrpc\":\"2.0\",\"id\":\"a\tb\",\"method\":\"ping\"}"),
        Parse("bom_prefix", "\uFEFF" + Valid),
        Parse("nul_byte_between_members", "{\"jsonrpc\":\"2.0\",\0\"id\":1,\"method\":\"ping\"}"),
        Parse("nul_byte_inside_a_string", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"pi\0ng\"}"),
        Parse("nul_byte_after_the_message", Valid + "\0"),
        Parse("two_messages_back_to_back", Valid + Valid),
        Parse("trailing_garbage", Valid + " ok"),

        // Shapes that are JSON but not an acceptable message.
        Invalid("response_without_id", """{"jsonrpc":"2.0","result":{}}""", "null", BadResponse),
        Invalid("method_and_result_together", """{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}""", "1", RequestWithResult),
        Invalid("method_and_error_together", """{"jsonrpc":"2.0","id":1,"method":"ping","error":{"code":-1,"message":"x"}}""", "1", RequestWithResult),
        Invalid("result_and_error_together", """{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":-1,"message":"x"}}""", "1", BadResponse),
        Invalid("error_response_with_null_id", """{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}""", "null", BadId),
        Invalid("neither_method_nor_result", """{"jsonrpc":"2.0","id":1}""", "1", BadMethod),
        Invalid("empty_object", "{}", "null", BadVersion),
    ];

    private static readonly Dictionary<string, Row> RowsByName = Rows.ToDictionary(r => r.Name, StringComparer.Ordinal);

    public static TheoryData<string> RowNames()
    {
        var data = new TheoryData<string>();
        foreach (var row in Rows)
        {
            data.Add(row.Name);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(RowNames))]
    public async Task A_malformed_request_is_refused_before_the_endpoint(string name)
    {
        var row = RowsByName[name];
        var reachedBefore = fixture.Reached;

        using var response = await SendAsync(row);

        Assert.Equal((HttpStatusCode)row.Status, response.StatusCode);
        Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        var requestId = Assert.Single(response.Headers.GetValues("X-Request-Id"));

        using var document = JsonDocument.Parse(await response.Content.ReadAsByteArrayAsync());
        var root = document.RootElement;
        Assert.Equal(["jsonrpc", "id", "error"], root.EnumerateObject().Select(p => p.Name));
        Assert.Equal("2.0", root.GetProperty("jsonrpc").GetString());
        Assert.Equal(row.Id, root.GetProperty("id").GetRawText());
        var error = root.GetProperty("error");
        Assert.Equal(row.Code, error.GetProperty("code").GetInt32());
        Assert.Equal(row.Message, error.GetProperty("message").GetString());
        var data = error.GetProperty("data");
        Assert.Equal(row.Reason, data.GetProperty("reason").GetString());
        Assert.Equal(requestId, data.GetProperty("request_id").GetString());
        Assert.Equal(["reason", "request_id"], data.EnumerateObject().Select(p => p.Name));

        Assert.Equal(reachedBefore, fixture.Reached);
    }

    [Fact]
    public void The_table_covers_at_least_forty_distinct_malformed_requests() =>
        Assert.True(RowsByName.Count >= 40 && RowsByName.Count == Rows.Count, $"{Rows.Count} rows, {RowsByName.Count} distinct");

    [Fact]
    public async Task After_the_table_nothing_reached_the_endpoint_and_a_well_formed_request_still_does()
    {
        Assert.Equal(0, fixture.Reached);

        using (var response = await fixture.Host.PostMcpAsync(Valid))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("""{"reached":true}""", await response.Content.ReadAsStringAsync());
        }

        Assert.Equal(1, fixture.Reached);

        // The largest body the default limit allows still gets through.
        using (var response = await fixture.Host.PostMcpAsync(EchoOfLength(BodyLimit)))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(2, fixture.Reached);
    }

    private async Task<HttpResponseMessage> SendAsync(Row row)
    {
        if (!row.Chunked)
        {
            return await fixture.Host.PostMcpAsync(row.Body());
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp")
        {
            Content = new StreamContent(new UnknownLengthStream(row.Body())),
        };
        request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json");
        request.Headers.TryAddWithoutValidation("Accept", "application/json, text/event-stream");
        request.Headers.TransferEncodingChunked = true;
        return await fixture.Host.Client.SendAsync(request);
    }

    /// <summary>A readable stream that does not tell its length, so HttpClient sends it chunked.</summary>
    private sealed class UnknownLengthStream(byte[] bytes) : MemoryStream(bytes, writable: false)
    {
        public override bool CanSeek => false;
    }
}
