using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace McpGuard.Tests.Infrastructure;

/// <summary>Assertions on what a client sees on the wire: status, headers and the exact JSON body.</summary>
internal static partial class WireAssert
{
    public const string JsonContentType = "application/json; charset=utf-8";

    /// <summary>
    /// Asserts a JSON-RPC error response exactly: status, <c>Cache-Control: no-store</c>, content type, the request-id
    /// header equal to <c>error.data.request_id</c>, and a body with no other members. Returns the request id.
    /// </summary>
    public static async Task<string> JsonRpcErrorAsync(
        HttpResponseMessage response,
        HttpStatusCode status,
        int code,
        string message,
        string reason,
        object? id,
        string requestIdHeader = "X-Request-Id",
        JsonObject? extraData = null)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"Expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        Assert.Equal(JsonContentType, response.Content.Headers.ContentType?.ToString());
        var requestId = RequestId(response, requestIdHeader);

        var data = new JsonObject { ["reason"] = reason, ["request_id"] = requestId };
        foreach (var (key, value) in extraData ?? [])
        {
            data[key] = value?.DeepClone();
        }

        var expected = new JsonObject
        {
            ["jsonrpc"] = "2.0",
            ["id"] = id switch
            {
                null => null,
                long number => JsonValue.Create(number),
                string text => JsonValue.Create(text),
                _ => throw new ArgumentException("An id is null, a long or a string.", nameof(id)),
            },
            ["error"] = new JsonObject { ["code"] = code, ["message"] = message, ["data"] = data },
        };
        JsonEquals(expected.ToJsonString(), body);
        return requestId;
    }

    /// <summary>The single value of the request-id header.</summary>
    public static string RequestId(HttpResponseMessage response, string header = "X-Request-Id")
    {
        Assert.True(response.Headers.TryGetValues(header, out var values), $"The response has no {header} header.");
        return Assert.Single(values);
    }

    /// <summary>A request id McpGuard made: <c>req_</c> and 22 URL-safe base64 characters.</summary>
    public static void IsGeneratedRequestId(string requestId) =>
        Assert.Matches(GeneratedRequestId(), requestId);

    public static void JsonEquals(string expected, string actual)
    {
        var expectedNode = JsonNode.Parse(expected);
        var actualNode = JsonNode.Parse(actual);
        Assert.True(JsonNode.DeepEquals(expectedNode, actualNode), $"Expected JSON:\n{expectedNode?.ToJsonString()}\nActual JSON:\n{actualNode?.ToJsonString()}");
    }

    public static void JsonEquals(string expected, JsonElement actual) => JsonEquals(expected, actual.GetRawText());

    [GeneratedRegex("^req_[A-Za-z0-9_-]{22}$")]
    private static partial Regex GeneratedRequestId();
}
