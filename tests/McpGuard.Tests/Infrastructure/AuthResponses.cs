using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace McpGuard.Tests.Infrastructure;

/// <summary>Request bodies and exact assertions for the auth tests: status, WWW-Authenticate, and the whole error body.</summary>
public static class AuthResponses
{
    /// <summary>The sample's metadata URL: built from McpGuard:Auth:Resource, never from the request's host and port.</summary>
    public const string MetadataUrl = "http://127.0.0.1:5080/.well-known/oauth-protected-resource/mcp";

    public const string InvalidKeyMessage = "invalid or expired API key";

    public const string InvalidTokenMessage = "invalid or expired token";

    /// <summary>The 401 challenge for a <c>tools:basic</c> call (echo) made without credentials.</summary>
    public const string EchoChallenge = $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"";

    /// <summary>The 401 challenge for a <c>tools:basic</c> call (echo) with an unknown, revoked or expired API key.</summary>
    public const string InvalidKeyEchoChallenge =
        $"Bearer error=\"invalid_token\", error_description=\"{InvalidKeyMessage}\", resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"";

    /// <summary>The 401 challenge for a <c>tools:basic</c> call (echo) with a bad JWT.</summary>
    public const string InvalidTokenEchoChallenge =
        $"Bearer error=\"invalid_token\", error_description=\"{InvalidTokenMessage}\", resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"";

    /// <summary>The 403 challenge for a <c>tools:premium</c> call by a caller without that scope.</summary>
    public const string PremiumChallenge = $"Bearer error=\"insufficient_scope\", scope=\"tools:premium\", resource_metadata=\"{MetadataUrl}\"";

    /// <summary>The 401 challenge for a request that names no tool yet (a session stream): every scope the sample knows.</summary>
    public const string AllScopesChallenge = $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic tools:premium\"";

    public static string ToolCall(string tool, object? arguments = null, int id = 1) =>
        JsonSerializer.Serialize(new { jsonrpc = "2.0", id, method = "tools/call", @params = new { name = tool, arguments = arguments ?? new { } } });

    public static string Echo(string message = "hello", int id = 1) => ToolCall("echo", new { message }, id);

    public static string PremiumReport(int id = 1) => ToolCall("premium_report", new { topic = "tea" }, id);

    public static string Request(string method, int id = 1) =>
        JsonSerializer.Serialize(new { jsonrpc = "2.0", id, method, @params = new { } });

    /// <summary>The raw WWW-Authenticate value (exactly one), or null when the response has none.</summary>
    public static string? Challenge(HttpResponseMessage response) =>
        response.Headers.NonValidated.TryGetValues("WWW-Authenticate", out var values) ? Assert.Single(values) : null;

    public static string RequestId(HttpResponseMessage response) => Assert.Single(response.Headers.GetValues("X-Request-Id"));

    /// <summary>
    /// Asserts a JSON-RPC error response exactly: status, WWW-Authenticate (null: absent), content type, and a body equal
    /// to <c>{"jsonrpc":"2.0","id":id,"error":{"code":…,"message":…,"data":{"reason":…,"request_id":&lt;X-Request-Id&gt;[,"scope":…]}}}</c>
    /// with no other field. Returns the body.
    /// </summary>
    public static async Task<JsonNode> AssertJsonRpcErrorAsync(
        HttpResponseMessage response,
        HttpStatusCode status,
        string? challenge,
        int code,
        string message,
        string reason,
        string? scope = null,
        int id = 1)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"Expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal(challenge, Challenge(response));
        Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());

        var data = new JsonObject { ["reason"] = reason, ["request_id"] = RequestId(response) };
        if (scope is not null)
        {
            data["scope"] = scope;
        }

        var expected = new JsonObject
        {
            ["jsonrpc"] = "2.0",
            ["id"] = id,
            ["error"] = new JsonObject { ["code"] = code, ["message"] = message, ["data"] = data },
        };
        var actual = JsonNode.Parse(text)!;
        AssertJsonEqual(expected, actual);
        return actual;
    }

    /// <summary>Asserts the 403 <c>insufficient_scope</c> refusal of a <c>tools:premium</c> call by a caller without that scope.</summary>
    public static Task<JsonNode> AssertPremiumRefusedAsync(HttpResponseMessage response, int id = 1) =>
        AssertJsonRpcErrorAsync(response, HttpStatusCode.Forbidden, PremiumChallenge, -31103, "Insufficient scope: this call needs tools:premium.", "insufficient_scope", scope: "tools:premium", id: id);

    /// <summary>Structural JSON equality (property order aside), showing both documents when they differ.</summary>
    public static void AssertJsonEqual(JsonNode expected, JsonNode? actual) =>
        Assert.True(JsonNode.DeepEquals(expected, actual), $"Expected:\n{expected.ToJsonString()}\nActual:\n{actual?.ToJsonString()}");

    /// <summary>The body with <c>error.data.request_id</c> removed, as compact JSON (to compare refusals with each other).</summary>
    public static string WithoutRequestId(JsonNode body)
    {
        var copy = body.DeepClone();
        Assert.True(copy["error"]!["data"]!.AsObject().Remove("request_id"));
        return copy.ToJsonString();
    }

    /// <summary>Asserts a 200 tools/call answer whose single text block is <paramref name="text"/>.</summary>
    public static async Task AssertToolTextAsync(HttpResponseMessage response, string text, int id = 1)
    {
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"Expected 200, got {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        var message = await Sse.ReadSingleMessageAsync(response);
        Assert.Equal(id, message.GetProperty("id").GetInt32());
        var result = message.GetProperty("result");
        Assert.False(result.TryGetProperty("isError", out var isError) && isError.GetBoolean(), result.GetRawText());
        var block = Assert.Single(result.GetProperty("content").EnumerateArray());
        Assert.Equal("text", block.GetProperty("type").GetString());
        Assert.Equal(text, block.GetProperty("text").GetString());
    }
}
