using System.Net;
using System.Text.Json.Nodes;
using McpGuard.Tests.Infrastructure;
using ModelContextProtocol.Client;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Auth;

/// <summary>Authorization after authentication: per-tool and per-method scopes, suspended accounts, anonymous methods, renderings, tools/list filtering.</summary>
public sealed class ScopeTests
{
    private const string SuspendedMessage = "Account suspended: contact the server's operator.";

    [Fact]
    public async Task Bob_calling_premium_report_gets_403_insufficient_scope_with_a_step_up_challenge()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await host.PostMcpAsync(PremiumReport(), apiKey: DemoKeys.Bob);

        await AssertPremiumRefusedAsync(response);
    }

    [Fact]
    public async Task Alice_calling_premium_report_gets_the_report()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await host.PostMcpAsync(PremiumReport(), apiKey: DemoKeys.Alice);

        await AssertToolTextAsync(response, "Premium report on tea: demand is steady, risks are known, and the outlook is fair.");
    }

    [Fact]
    public async Task A_tool_needing_two_scopes_names_both_in_the_challenge_even_when_the_caller_has_one()
    {
        await using var guard = await GuardPipeline.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Tools:premium_report:Scopes:1"] = "reports:write",
        });

        using var response = await guard.PostMcpAsync(PremiumReport(), apiKey: DemoKeys.Alice);

        await AssertJsonRpcErrorAsync(
            response,
            HttpStatusCode.Forbidden,
            $"Bearer error=\"insufficient_scope\", scope=\"tools:premium reports:write\", resource_metadata=\"{MetadataUrl}\"",
            -31103,
            "Insufficient scope: this call needs tools:premium reports:write.",
            "insufficient_scope",
            scope: "tools:premium reports:write");
        Assert.Equal(0, guard.Reached);
    }

    [Fact]
    public async Task Per_method_scopes_refuse_a_caller_without_them()
    {
        await using var guard = await GuardPipeline.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Methods:resources/list:Scopes:0"] = "resources:read",
        });

        using (var response = await guard.PostMcpAsync(Request("resources/list"), apiKey: DemoKeys.Alice))
        {
            await AssertJsonRpcErrorAsync(
                response,
                HttpStatusCode.Forbidden,
                $"Bearer error=\"insufficient_scope\", scope=\"resources:read\", resource_metadata=\"{MetadataUrl}\"",
                -31103,
                "Insufficient scope: this call needs resources:read.",
                "insufficient_scope",
                scope: "resources:read");
        }

        // Without credentials the 401 challenge names the method's scope.
        using (var response = await guard.PostMcpAsync(Request("resources/list"), apiKey: null))
        {
            await AssertJsonRpcErrorAsync(
                response, HttpStatusCode.Unauthorized, $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"resources:read\"", -31101, InvalidKeyMessage, "unauthorized");
        }

        Assert.Equal(0, guard.Reached);
    }

    [Fact]
    public async Task Per_method_scopes_let_a_caller_with_them_through()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Methods:tools/list:Scopes:0"] = "tools:list",
            ["McpGuard:Auth:ApiKeys:Keys:0:Scopes:2"] = "tools:list",
        });

        using (var response = await host.PostMcpAsync(Request("tools/list"), apiKey: DemoKeys.Alice))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var message = await Sse.ReadSingleMessageAsync(response);
            Assert.Equal(6, message.GetProperty("result").GetProperty("tools").GetArrayLength());
        }

        using (var response = await host.PostMcpAsync(Request("tools/list"), apiKey: DemoKeys.Bob))
        {
            await AssertJsonRpcErrorAsync(
                response,
                HttpStatusCode.Forbidden,
                $"Bearer error=\"insufficient_scope\", scope=\"tools:list\", resource_metadata=\"{MetadataUrl}\"",
                -31103,
                "Insufficient scope: this call needs tools:list.",
                "insufficient_scope",
                scope: "tools:list");
        }
    }

    [Fact]
    public async Task Carol_is_suspended_403_without_a_challenge()
    {
        await using var guard = await GuardPipeline.StartSampleAsync();

        using var response = await guard.PostMcpAsync(Echo(), apiKey: DemoKeys.Carol);

        await AssertJsonRpcErrorAsync(response, HttpStatusCode.Forbidden, null, -31104, SuspendedMessage, "suspended");
        Assert.Equal(0, guard.Reached);
    }

    [Fact]
    public async Task Suspended_wins_over_a_missing_scope()
    {
        await using var guard = await GuardPipeline.StartSampleAsync();

        using var response = await guard.PostMcpAsync(PremiumReport(), apiKey: DemoKeys.Carol);

        await AssertJsonRpcErrorAsync(response, HttpStatusCode.Forbidden, null, -31104, SuspendedMessage, "suspended");
        Assert.Equal(0, guard.Reached);
    }

    [Fact]
    public async Task An_anonymous_method_still_needs_credentials_for_a_call_that_needs_a_scope()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Auth:AnonymousMethods:0"] = "tools/call",
        });

        using var response = await host.PostMcpAsync(Echo(), apiKey: null);

        await AssertJsonRpcErrorAsync(
            response, HttpStatusCode.Unauthorized, $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"", -31101, InvalidKeyMessage, "unauthorized");
    }

    [Fact]
    public async Task A_star_makes_every_method_anonymous_but_not_a_call_that_needs_a_scope()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Auth:AnonymousMethods:0"] = "*",
        });

        // A method McpGuard has never heard of reaches the server, which answers it: the guard adds no 401 of its own.
        using (var response = await host.PostMcpAsync(Request("vendor/unknown"), apiKey: null))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Null(Challenge(response));
            var message = await Sse.ReadSingleMessageAsync(response);
            Assert.Equal(-32601, message.GetProperty("error").GetProperty("code").GetInt32());
        }

        using (var response = await host.PostMcpAsync(Request("tools/list"), apiKey: null))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var message = await Sse.ReadSingleMessageAsync(response);
            Assert.Empty(message.GetProperty("result").GetProperty("tools").EnumerateArray());
        }

        using (var response = await host.PostMcpAsync(Echo(), apiKey: null))
        {
            await AssertJsonRpcErrorAsync(
                response, HttpStatusCode.Unauthorized, $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"", -31101, InvalidKeyMessage, "unauthorized");
        }
    }

    [Fact]
    public async Task Anonymous_methods_pass_without_credentials_while_tool_calls_still_need_them()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Auth:AnonymousMethods:0"] = "tools/list",
        });

        using (var response = await host.PostMcpAsync(Request("tools/list"), apiKey: null))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Null(Challenge(response));
            // An anonymous caller sees only the tools that need no scope: every sample tool needs one.
            var message = await Sse.ReadSingleMessageAsync(response);
            Assert.Empty(message.GetProperty("result").GetProperty("tools").EnumerateArray());
        }

        using (var response = await host.PostMcpAsync(Echo(), apiKey: null))
        {
            await AssertJsonRpcErrorAsync(
                response, HttpStatusCode.Unauthorized, $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"", -31101, InvalidKeyMessage, "unauthorized");
        }

        // A credential sent to an anonymous method is still checked: a bad one is refused, not ignored.
        using (var response = await host.PostMcpAsync(Request("tools/list"), apiKey: DemoKeys.Revoked))
        {
            await AssertJsonRpcErrorAsync(
                response,
                HttpStatusCode.Unauthorized,
                $"Bearer error=\"invalid_token\", error_description=\"invalid or expired API key\", resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic tools:premium\"",
                -31102,
                InvalidKeyMessage,
                "invalid_token");
        }
    }

    [Fact]
    public async Task Problem_details_renders_401_and_403_as_problem_json_with_the_same_challenges()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Errors:Format"] = "ProblemDetails" });

        using (var response = await host.PostMcpAsync(Echo(), apiKey: null))
        {
            await AssertProblemAsync(
                response,
                HttpStatusCode.Unauthorized,
                $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"",
                "https://tools.ietf.org/html/rfc9110#section-15.5.2",
                InvalidKeyMessage,
                "unauthorized",
                "Authenticate with an API key or an OAuth access token, then retry.",
                "authenticate");
        }

        using (var response = await host.PostMcpAsync(Echo(), apiKey: DemoKeys.Expired))
        {
            await AssertProblemAsync(
                response,
                HttpStatusCode.Unauthorized,
                $"Bearer error=\"invalid_token\", error_description=\"invalid or expired API key\", resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"",
                "https://tools.ietf.org/html/rfc9110#section-15.5.2",
                InvalidKeyMessage,
                "invalid_token",
                "Obtain a new access token or API key, then retry.",
                "authenticate");
        }

        using (var response = await host.PostMcpAsync(PremiumReport(), apiKey: DemoKeys.Bob))
        {
            await AssertProblemAsync(
                response,
                HttpStatusCode.Forbidden,
                PremiumChallenge,
                "https://tools.ietf.org/html/rfc9110#section-15.5.4",
                "Insufficient scope: this call needs tools:premium.",
                "insufficient_scope",
                "Obtain credentials with the scopes named in the WWW-Authenticate challenge, then retry.",
                "request_scope",
                scope: "tools:premium");
        }

        using (var response = await host.PostMcpAsync(Echo(), apiKey: DemoKeys.Carol))
        {
            await AssertProblemAsync(
                response,
                HttpStatusCode.Forbidden,
                null,
                "https://tools.ietf.org/html/rfc9110#section-15.5.4",
                SuspendedMessage,
                "suspended",
                "Contact the server's operator about the account.",
                "contact_support");
        }
    }

    [Fact]
    public async Task Tool_result_format_never_renders_401_or_insufficient_scope_in_band()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Errors:Format"] = "ToolResult" });

        using (var response = await host.PostMcpAsync(Echo(), apiKey: null))
        {
            await AssertJsonRpcErrorAsync(
                response, HttpStatusCode.Unauthorized, $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"", -31101, InvalidKeyMessage, "unauthorized");
        }

        using (var response = await host.PostMcpAsync(Echo(), apiKey: DemoKeys.Revoked))
        {
            await AssertJsonRpcErrorAsync(
                response,
                HttpStatusCode.Unauthorized,
                $"Bearer error=\"invalid_token\", error_description=\"invalid or expired API key\", resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"",
                -31102,
                InvalidKeyMessage,
                "invalid_token");
        }

        using (var response = await host.PostMcpAsync(PremiumReport(), apiKey: DemoKeys.Bob))
        {
            await AssertJsonRpcErrorAsync(
                response, HttpStatusCode.Forbidden, PremiumChallenge, -31103, "Insufficient scope: this call needs tools:premium.", "insufficient_scope", scope: "tools:premium");
        }
    }

    [Fact]
    public async Task Tool_result_format_renders_suspended_in_band_for_tool_calls_only()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Errors:Format"] = "ToolResult" });

        using (var response = await host.PostMcpAsync(Echo(id: 7), apiKey: DemoKeys.Carol))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Null(Challenge(response));
            var requestId = RequestId(response);
            var expected = new JsonObject
            {
                ["jsonrpc"] = "2.0",
                ["id"] = 7,
                ["result"] = new JsonObject
                {
                    ["content"] = new JsonArray(new JsonObject
                    {
                        ["type"] = "text",
                        ["text"] = $"**Error code:** suspended\n{SuspendedMessage}\nContact the server's operator about the account.",
                    }),
                    ["structuredContent"] = new JsonObject
                    {
                        ["reason"] = "suspended",
                        ["request_id"] = requestId,
                        ["retryable"] = false,
                        ["action"] = "contact_support",
                    },
                    ["isError"] = true,
                },
            };
            AssertJsonEqual(expected, JsonNode.Parse(await response.Content.ReadAsStringAsync()));
        }

        // Not a tool call: no tool result to put it in, so JSON-RPC with the HTTP status.
        using (var response = await host.PostMcpAsync(Request("tools/list"), apiKey: DemoKeys.Carol))
        {
            await AssertJsonRpcErrorAsync(response, HttpStatusCode.Forbidden, null, -31104, SuspendedMessage, "suspended");
        }
    }

    [Fact]
    public async Task The_sdk_client_sees_only_the_tools_its_scopes_allow()
    {
        await using var host = await GuardedHost.StartSampleAsync();

        Assert.Equal(["add", "echo", "fail", "premium_report", "search", "slow"], await ListToolNamesAsync(host, DemoKeys.Alice));
        Assert.Equal(["add", "echo", "fail", "search", "slow"], await ListToolNamesAsync(host, DemoKeys.Bob));
    }

    [Fact]
    public async Task With_tool_list_filtering_off_the_sdk_client_sees_every_tool()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?> { ["McpGuard:Auth:FilterToolList"] = "false" });

        Assert.Equal(["add", "echo", "fail", "premium_report", "search", "slow"], await ListToolNamesAsync(host, DemoKeys.Bob));
    }

    private static async Task<string[]> ListToolNamesAsync(GuardedHost host, string key)
    {
        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = host.McpEndpoint,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["X-Api-Key"] = key },
        });
        await using var client = await McpClient.CreateAsync(transport);
        var tools = await client.ListToolsAsync();
        return [.. tools.Select(t => t.Name).Order(StringComparer.Ordinal)];
    }

    /// <summary>
    /// An RFC 9457 body, every field: type, title, status, detail, error_code, request_id, retryable, resolve, scope
    /// when given, and the traceId ASP.NET Core's writer adds (a W3C trace id, not the request id).
    /// </summary>
    private static async Task AssertProblemAsync(
        HttpResponseMessage response,
        HttpStatusCode status,
        string? challenge,
        string type,
        string title,
        string errorCode,
        string suggestion,
        string action,
        string? scope = null)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"Expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal(challenge, Challenge(response));
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);

        var actual = JsonNode.Parse(text)!.AsObject();
        var traceId = actual["traceId"]?.GetValue<string>();
        Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$", traceId);
        var expected = new JsonObject
        {
            ["type"] = type,
            ["title"] = title,
            ["status"] = (int)status,
            ["detail"] = suggestion,
            ["error_code"] = errorCode,
            ["request_id"] = RequestId(response),
            ["retryable"] = false,
            ["resolve"] = new JsonObject { ["message"] = suggestion, ["action"] = action },
            ["traceId"] = traceId,
        };
        if (scope is not null)
        {
            expected["scope"] = scope;
        }

        AssertJsonEqual(expected, actual);
    }
}
