using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using McpGuard.Errors;
using McpGuard.Protocol;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.Integration;

/// <summary>
/// The three renderings of an error (JSON-RPC, RFC 9457 problem details, in-band tool result) and the
/// per-reason overrides, as a client sees them.
/// </summary>
public sealed class RenderingTests
{
    private const string ProblemContentType = "application/problem+json";
    private const string EchoCall = """{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"}}}""";

    private static readonly Dictionary<string, string?> ProblemDetailsFormat = new() { ["McpGuard:Errors:Format"] = "ProblemDetails" };

    // ---- Problem details ----

    public static TheoryData<string, int, string, string, string> FrontDoorProblems => new()
    {
        { "parse", 400, "parse_error", "Parse error: the request body is not valid JSON.", "Send one JSON-RPC 2.0 message as UTF-8 encoded JSON." },
        { "version", 400, "invalid_request", "Invalid Request: missing or invalid jsonrpc version", "Send one JSON-RPC 2.0 object per POST with \"jsonrpc\": \"2.0\", a string method and a string or integer id." },
        { "content-type", 415, "unsupported_media_type", "Unsupported Media Type: send the body as Content-Type: application/json.", "Send the body with Content-Type: application/json." },
        { "accept", 406, "not_acceptable", "Not Acceptable: the client must accept both application/json and text/event-stream.", "Send Accept: application/json, text/event-stream." },
        { "origin", 403, "origin_not_allowed", "Origin not allowed: this server does not accept requests from that web origin.", "This server does not accept requests from this web origin." },
        { "header", 400, "header_mismatch", "Header mismatch: Mcp-Method header value 'tools/list' does not match body value 'tools/call'.", "Make the Mcp-Method and Mcp-Name headers repeat the body's method and name." },
        { "size", 413, "payload_too_large", "Payload Too Large: the request body exceeds 64 bytes.", "Send a smaller request body." },
        { "get", 405, "method_not_allowed", "Method Not Allowed: this endpoint accepts POST.", "Send MCP messages with POST." },
    };

    [Theory]
    [MemberData(nameof(FrontDoorProblems))]
    public async Task Front_door_errors_render_as_problem_details(string provoke, int status, string reason, string title, string suggestion)
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>(ProblemDetailsFormat)
        {
            ["McpGuard:MaxRequestBodySize"] = provoke == "size" ? "64" : "1048576",
        });

        using var response = await ProvokeAsync(host, provoke);

        await AssertProblemAsync(response, status, reason, title, suggestion, action: reason == "origin_not_allowed" ? "do_not_retry" : "fix_request");
        if (status == 405)
        {
            Assert.Equal(["POST"], response.Content.Headers.Allow);
        }
    }

    [Fact]
    public async Task Problem_details_honour_a_client_that_accepts_only_problem_json()
    {
        await using var host = await GuardedHost.StartSampleAsync(ProblemDetailsFormat);

        using var response = await host.PostMcpAsync("{", accept: "application/problem+json, application/json, text/event-stream");

        await AssertProblemAsync(response, 400, "parse_error", "Parse error: the request body is not valid JSON.", "Send one JSON-RPC 2.0 message as UTF-8 encoded JSON.", "fix_request");
    }

    [Fact]
    public async Task Problem_details_go_through_the_apps_own_problem_details_service_when_it_has_one()
    {
        // McpGuard registers no IProblemDetailsService of its own; an app that does sees its customizations on McpGuard's bodies.
        await using var host = await GuardedHost.StartSampleAsync(ProblemDetailsFormat, configure: web => web.ConfigureServices(services =>
            services.AddProblemDetails(options => options.CustomizeProblemDetails = c => c.ProblemDetails.Extensions["served_by"] = "the app")));

        using var response = await host.PostMcpAsync("{");

        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!.AsObject();
        Assert.Equal(400, (int)response.StatusCode);
        Assert.Equal(ProblemContentType, response.Content.Headers.ContentType?.ToString());
        Assert.Equal("the app", body["served_by"]?.GetValue<string>());
        Assert.Equal("parse_error", body["error_code"]?.GetValue<string>());
    }

    [Fact]
    public async Task A_406_to_a_client_that_refuses_json_falls_back_to_json_rpc()
    {
        // IProblemDetailsService will not write problem+json to a client whose Accept excludes it, so the writer falls back.
        await using var host = await GuardedHost.StartSampleAsync(ProblemDetailsFormat);

        using var response = await host.PostMcpAsync("""{"jsonrpc":"2.0","id":1,"method":"ping"}""", accept: "text/event-stream");

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.NotAcceptable, -32600,
            "Not Acceptable: the client must accept both application/json and text/event-stream.", "not_acceptable", id: null);
    }

    [Fact]
    public async Task A_per_reason_format_overrides_the_default()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Errors:Reasons:header_mismatch:Format"] = "ProblemDetails",
        });

        using var mismatch = await host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["Mcp-Method"] = "tools/list" });
        using var parse = await host.PostMcpAsync("{");

        await AssertProblemAsync(mismatch, 400, "header_mismatch",
            "Header mismatch: Mcp-Method header value 'tools/list' does not match body value 'tools/call'.",
            "Make the Mcp-Method and Mcp-Name headers repeat the body's method and name.", "fix_request");
        await WireAssert.JsonRpcErrorAsync(parse, HttpStatusCode.BadRequest, -32700,
            "Parse error: the request body is not valid JSON.", "parse_error", id: null);
    }

    [Fact]
    public async Task A_per_reason_json_rpc_format_overrides_a_problem_details_default()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>(ProblemDetailsFormat)
        {
            ["McpGuard:Errors:Reasons:parse_error:Format"] = "JsonRpc",
        });

        using var parse = await host.PostMcpAsync("{");
        using var version = await host.PostMcpAsync("""{"jsonrpc":"1.0","id":1,"method":"ping"}""");

        await WireAssert.JsonRpcErrorAsync(parse, HttpStatusCode.BadRequest, -32700,
            "Parse error: the request body is not valid JSON.", "parse_error", id: null);
        await AssertProblemAsync(version, 400, "invalid_request", "Invalid Request: missing or invalid jsonrpc version",
            "Send one JSON-RPC 2.0 object per POST with \"jsonrpc\": \"2.0\", a string method and a string or integer id.", "fix_request");
    }

    [Fact]
    public async Task An_overridden_code_and_message_appear_on_the_wire()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Errors:Reasons:header_mismatch:Code"] = "-31999",
            ["McpGuard:Errors:Reasons:header_mismatch:Message"] = "Headers and body disagree",
            ["McpGuard:Errors:Reasons:origin_not_allowed:Code"] = "-32000",
        });

        using var mismatch = await host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["Mcp-Method"] = "tools/list" });
        using var origin = await host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["Origin"] = "http://evil.example" });

        // The configured message replaces the request-specific detail; the status stays the catalog's.
        await WireAssert.JsonRpcErrorAsync(mismatch, HttpStatusCode.BadRequest, -31999, "Headers and body disagree", "header_mismatch", id: 5L);
        await WireAssert.JsonRpcErrorAsync(origin, HttpStatusCode.Forbidden, -32000,
            "Origin not allowed: this server does not accept requests from that web origin.", "origin_not_allowed", id: null);
    }

    [Fact]
    public async Task Overridden_message_suggestion_and_url_appear_in_problem_details()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>(ProblemDetailsFormat)
        {
            ["McpGuard:Errors:Reasons:unsupported_media_type:Message"] = "JSON only, please",
            ["McpGuard:Errors:Reasons:unsupported_media_type:Suggestion"] = "Set Content-Type: application/json and send again.",
            ["McpGuard:Errors:Reasons:unsupported_media_type:Url"] = "https://docs.example.com/errors/unsupported_media_type",
        });

        using var response = await host.PostMcpAsync("""{"jsonrpc":"2.0","id":1,"method":"ping"}""", contentType: "text/plain");

        await AssertProblemAsync(response, 415, "unsupported_media_type", "JSON only, please",
            "Set Content-Type: application/json and send again.", "fix_request",
            url: "https://docs.example.com/errors/unsupported_media_type");
    }

    [Fact]
    public async Task An_overridden_suggestion_does_not_change_the_json_rpc_body()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Errors:Reasons:parse_error:Suggestion"] = "Check your JSON.",
            ["McpGuard:Errors:Reasons:parse_error:Url"] = "https://docs.example.com/errors/parse_error",
        });

        using var response = await host.PostMcpAsync("{");

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.BadRequest, -32700,
            "Parse error: the request body is not valid JSON.", "parse_error", id: null);
    }

    // ---- Tool results ----

    [Fact]
    public async Task Front_door_errors_fall_back_to_json_rpc_when_the_default_is_tool_result()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Errors:Format"] = "ToolResult" });

        using var mismatch = await host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["Mcp-Method"] = "tools/list" });
        using var origin = await host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["Origin"] = "http://evil.example" });
        using var parse = await host.PostMcpAsync("""{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo"}""");

        await WireAssert.JsonRpcErrorAsync(mismatch, HttpStatusCode.BadRequest, -32020,
            "Header mismatch: Mcp-Method header value 'tools/list' does not match body value 'tools/call'.", "header_mismatch", id: 5L);
        await WireAssert.JsonRpcErrorAsync(origin, HttpStatusCode.Forbidden, -31105,
            "Origin not allowed: this server does not accept requests from that web origin.", "origin_not_allowed", id: null);
        await WireAssert.JsonRpcErrorAsync(parse, HttpStatusCode.BadRequest, -32700,
            "Parse error: the request body is not valid JSON.", "parse_error", id: null);
    }

    [Fact]
    public async Task A_per_reason_tool_result_format_on_a_front_door_reason_falls_back_to_json_rpc()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Errors:Reasons:header_mismatch:Format"] = "ToolResult",
        });

        using var mismatch = await host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["Mcp-Name"] = "add" });

        await WireAssert.JsonRpcErrorAsync(mismatch, HttpStatusCode.BadRequest, -32020,
            "Header mismatch: Mcp-Name header value 'add' does not match body value 'echo'.", "header_mismatch", id: 5L);
    }

    [Fact]
    public async Task A_gate_refusal_of_a_tool_call_renders_in_band_as_a_200_tool_result()
    {
        var context = NewContext(McpGuardErrorFormat.ToolResult, ToolCall(new JsonRpcId(9), "premium_report"), out var catalog);
        var error = new McpGuardError(catalog[McpGuardReasons.OutOfCredit], "Your balance of 0.20 does not cover the price of 1.50.")
        {
            Data = [new("balance_micro", 200_000L), new("price_micro", 1_500_000L), new("topup_url", new Uri("https://billing.example.com/topup"))],
        };

        await new McpGuardErrorWriter().WriteAsync(context, error);

        Assert.Equal(StatusCodes.Status200OK, context.Response.StatusCode);
        Assert.Equal("no-store", context.Response.Headers.CacheControl.ToString());
        Assert.Equal(WireAssert.JsonContentType, context.Response.ContentType);
        var body = ReadBody(context);
        WireAssert.JsonEquals("""
            {
              "jsonrpc": "2.0",
              "id": 9,
              "result": {
                "content": [
                  {
                    "type": "text",
                    "text": "**Error code:** out_of_credit\nYour balance of 0.20 does not cover the price of 1.50.\nTop up the account, then retry."
                  }
                ],
                "structuredContent": {
                  "reason": "out_of_credit",
                  "request_id": "req_rendering-test",
                  "retryable": false,
                  "action": "top_up",
                  "balance_micro": 200000,
                  "price_micro": 1500000,
                  "topup_url": "https://billing.example.com/topup"
                },
                "isError": true
              }
            }
            """, body);
        using var document = JsonDocument.Parse(body);
        Assert.StartsWith("**Error code:** out_of_credit\n", document.RootElement.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_in_band_rate_limit_carries_retry_after_in_the_header_and_the_structured_content()
    {
        var context = NewContext(McpGuardErrorFormat.ToolResult, ToolCall(new JsonRpcId("call-1"), "echo"), out var catalog);
        var error = new McpGuardError(catalog[McpGuardReasons.RateLimited], "Too many calls: 120 per minute.") { RetryAfterSeconds = 43 };

        await new McpGuardErrorWriter().WriteAsync(context, error);

        Assert.Equal(StatusCodes.Status200OK, context.Response.StatusCode);
        Assert.Equal("43", context.Response.Headers.RetryAfter.ToString());
        WireAssert.JsonEquals("""
            {
              "jsonrpc": "2.0",
              "id": "call-1",
              "result": {
                "content": [ { "type": "text", "text": "**Error code:** rate_limited\nToo many calls: 120 per minute.\nWait for the number of seconds in Retry-After, then retry." } ],
                "structuredContent": { "reason": "rate_limited", "request_id": "req_rendering-test", "retryable": true, "action": "back_off", "retry_after": 43 },
                "isError": true
              }
            }
            """, ReadBody(context));
    }

    [Fact]
    public async Task A_tool_result_refusal_of_a_request_that_is_not_a_tool_call_is_json_rpc()
    {
        var envelope = new McpEnvelope { Kind = McpMessageKind.Request, Id = new JsonRpcId(3), Method = McpMethods.ToolsList };
        var context = NewContext(McpGuardErrorFormat.ToolResult, envelope, out var catalog);

        await new McpGuardErrorWriter().WriteAsync(context, new McpGuardError(catalog[McpGuardReasons.OutOfCredit], "No credit left."));

        Assert.Equal(StatusCodes.Status402PaymentRequired, context.Response.StatusCode);
        Assert.Equal(WireAssert.JsonContentType, context.Response.ContentType);
        WireAssert.JsonEquals("""
            {"jsonrpc":"2.0","id":3,"error":{"code":-31301,"message":"No credit left.","data":{"reason":"out_of_credit","request_id":"req_rendering-test"}}}
            """, ReadBody(context));
    }

    [Theory]
    [InlineData("unauthorized", 401, -31101, "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\"")]
    [InlineData("invalid_token", 401, -31102, "Bearer error=\"invalid_token\"")]
    [InlineData("insufficient_scope", 403, -31103, "Bearer error=\"insufficient_scope\", scope=\"tools:premium\"")]
    public async Task Authentication_challenges_never_render_in_band(string reason, int status, int code, string challenge)
    {
        foreach (var perReason in new[] { false, true })
        {
            // Tool result as the default, and as the reason's own format: both must keep the HTTP challenge.
            var context = NewContext(perReason ? McpGuardErrorFormat.JsonRpc : McpGuardErrorFormat.ToolResult, ToolCall(new JsonRpcId(11), "echo"), out var catalog,
                perReason ? reason : null);
            var error = new McpGuardError(catalog[reason], "Credentials are needed for this call.") { Challenge = challenge };

            await new McpGuardErrorWriter().WriteAsync(context, error);

            Assert.Equal(status, context.Response.StatusCode);
            Assert.Equal(challenge, context.Response.Headers.WWWAuthenticate.ToString());
            Assert.Equal("no-store", context.Response.Headers.CacheControl.ToString());
            Assert.Equal(WireAssert.JsonContentType, context.Response.ContentType);
            WireAssert.JsonEquals(new JsonObject
            {
                ["jsonrpc"] = "2.0",
                ["id"] = 11,
                ["error"] = new JsonObject
                {
                    ["code"] = code,
                    ["message"] = "Credentials are needed for this call.",
                    ["data"] = new JsonObject { ["reason"] = reason, ["request_id"] = "req_rendering-test" },
                },
            }.ToJsonString(), ReadBody(context));
        }
    }

    [Fact]
    public void Only_gate_and_tool_reasons_allow_in_band_rendering()
    {
        var inBand = McpGuardErrorCatalog.Defaults.Where(d => d.AllowsToolResult).Select(d => d.Reason).Order(StringComparer.Ordinal);

        Assert.Equal(
            ["cap_reached", "forbidden", "invalid_parameter", "ledger_unavailable", "limiter_unavailable", "not_found", "out_of_credit", "price_above_limit", "rate_limited", "suspended", "timeout", "tool_archived", "tool_paused", "upstream_error", "upstream_timeout"],
            inBand);
    }

    private static async Task<HttpResponseMessage> ProvokeAsync(GuardedHost host, string provoke)
    {
        switch (provoke)
        {
            case "parse":
                return await host.PostMcpAsync("{");
            case "version":
                return await host.PostMcpAsync("""{"jsonrpc":"1.0","id":1,"method":"ping"}""");
            case "content-type":
                return await host.PostMcpAsync("{}", contentType: "text/plain");
            case "accept":
                return await host.PostMcpAsync("{}", accept: "application/json");
            case "origin":
                return await host.PostMcpAsync("{}", headers: new Dictionary<string, string> { ["Origin"] = "http://evil.example" });
            case "header":
                return await host.PostMcpAsync(EchoCall, headers: new Dictionary<string, string> { ["Mcp-Method"] = "tools/list" });
            case "size":
                return await host.PostMcpAsync(new string(' ', 65));
            case "get":
                using (var request = new HttpRequestMessage(HttpMethod.Get, "/mcp"))
                {
                    request.Headers.TryAddWithoutValidation("Accept", "application/json, text/event-stream");
                    return await host.Client.SendAsync(request);
                }

            default:
                throw new ArgumentOutOfRangeException(nameof(provoke), provoke, null);
        }
    }

    /// <summary>Asserts an RFC 9457 body exactly, with the request-id header equal to its <c>request_id</c>.</summary>
    private static async Task AssertProblemAsync(HttpResponseMessage response, int status, string reason, string title, string suggestion, string action, string? url = null)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == (int)response.StatusCode, $"Expected {status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal(ProblemContentType, response.Content.Headers.ContentType?.ToString());
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        var requestId = WireAssert.RequestId(response);

        var resolve = new JsonObject { ["message"] = suggestion, ["action"] = action };
        if (url is not null)
        {
            resolve["url"] = url;
        }

        var expected = new JsonObject
        {
            ["type"] = TypeFor(status),
            ["title"] = title,
            ["status"] = status,
            ["detail"] = suggestion,
            ["error_code"] = reason,
            ["request_id"] = requestId,
            ["retryable"] = false,
            ["resolve"] = resolve,
        };

        // ASP.NET Core's problem details defaults add the request's W3C trace id (the hosting Activity's id).
        var actual = JsonNode.Parse(body)!.AsObject();
        var traceId = actual["traceId"]?.GetValue<string>();
        Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-9a-f]$", traceId);
        actual.Remove("traceId");
        WireAssert.JsonEquals(expected.ToJsonString(), actual.ToJsonString());
    }

    /// <summary>The <c>type</c> ASP.NET Core's problem details defaults put in for a status.</summary>
    private static string TypeFor(int status) => status switch
    {
        400 => "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        403 => "https://tools.ietf.org/html/rfc9110#section-15.5.4",
        405 => "https://tools.ietf.org/html/rfc9110#section-15.5.6",
        406 => "https://tools.ietf.org/html/rfc9110#section-15.5.7",
        413 => "https://tools.ietf.org/html/rfc9110#section-15.5.14",
        415 => "https://tools.ietf.org/html/rfc9110#section-15.5.16",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, null),
    };

    private static McpEnvelope ToolCall(JsonRpcId id, string tool) =>
        new() { Kind = McpMessageKind.Request, Id = id, Method = McpMethods.ToolsCall, Name = tool };

    private static DefaultHttpContext NewContext(McpGuardErrorFormat format, McpEnvelope envelope, out McpGuardErrorCatalog catalog, string? toolResultReason = null)
    {
        var options = new McpGuardOptions();
        options.Errors.Format = format;
        if (toolResultReason is not null)
        {
            options.Errors.Reasons[toolResultReason] = new McpGuardReasonOptions { Format = McpGuardErrorFormat.ToolResult };
        }

        var state = new McpGuardState(options);
        catalog = state.Catalog;
        var context = new DefaultHttpContext();
        context.Response.Body = new MemoryStream();
        var feature = new McpGuardFeature("req_rendering-test", state);
        if (envelope is not null)
        {
            feature.RecordEnvelope(envelope);
        }

        context.Features.Set(feature);
        return context;
    }

    private static string ReadBody(HttpContext context) =>
        Encoding.UTF8.GetString(((MemoryStream)context.Response.Body).ToArray());
}
