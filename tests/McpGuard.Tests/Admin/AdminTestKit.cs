using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Admin;

/// <summary>Admin requests and exact assertions on what the admin API answers.</summary>
internal static class AdminTestKit
{
    /// <summary>The admin key the tests configure (its hash goes in McpGuard:Admin:KeyHash).</summary>
    public const string AdminKey = "mcpg_admin_test";

    /// <summary>The sample's documented demo admin key (its hash is in samples/McpGuard.Sample/appsettings.json).</summary>
    public const string DemoAdminKey = "mcpg_demo_admin";

    /// <summary>Every test clock starts here; ledger rows written at start are stamped with it.</summary>
    public static readonly DateTimeOffset Start = new(2026, 5, 9, 12, 0, 0, TimeSpan.Zero);

    public const string StartText = "2026-05-09T12:00:00Z";

    public const string TopUpUrl = "https://billing.example.com/topup";

    /// <summary>The sample with the test admin key and a clock that stands still unless moved.</summary>
    public static Task<GuardedHost> StartSampleAsync(FakeTimeProvider? clock = null, IReadOnlyDictionary<string, string?>? overrides = null)
    {
        var configuration = new Dictionary<string, string?> { ["McpGuard:Admin:KeyHash"] = McpGuardApiKey.Hash(AdminKey) };
        foreach (var (key, value) in overrides ?? new Dictionary<string, string?>())
        {
            configuration[key] = value;
        }

        clock ??= new FakeTimeProvider(Start);
        return GuardedHost.StartSampleAsync(configuration, builder => builder.ConfigureServices(services => services.AddSingleton<TimeProvider>(clock)));
    }

    /// <summary>Sends an admin request: <paramref name="json"/> as an application/json body, the admin key as a Bearer token (null: none).</summary>
    public static async Task<HttpResponseMessage> SendAsync(
        this GuardedHost host,
        HttpMethod method,
        string path,
        string? json = null,
        string? key = AdminKey,
        string contentType = "application/json",
        IReadOnlyDictionary<string, string>? headers = null)
    {
        using var request = new HttpRequestMessage(method, path);
        if (json is not null)
        {
            request.Content = new ByteArrayContent(Encoding.UTF8.GetBytes(json));
            request.Content.Headers.ContentType = MediaTypeHeaderValue.Parse(contentType);
        }

        if (key is not null)
        {
            request.Headers.TryAddWithoutValidation("Authorization", $"Bearer {key}");
        }

        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        return await host.Client.SendAsync(request);
    }

    public static Task<HttpResponseMessage> PostAdminAsync(this GuardedHost host, string path, string? json = null, string? key = AdminKey) =>
        host.SendAsync(HttpMethod.Post, path, json, key);

    public static Task<HttpResponseMessage> GetAdminAsync(this GuardedHost host, string path, string? key = AdminKey) =>
        host.SendAsync(HttpMethod.Get, path, key: key);

    /// <summary>Asserts a JSON success: status, content type, no-store, and a body equal to <paramref name="expected"/>. Returns the body.</summary>
    public static async Task<JsonNode> AssertJsonAsync(HttpResponseMessage response, HttpStatusCode status, JsonNode expected)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"Expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());
        var actual = JsonNode.Parse(text)!;
        AssertJsonEqual(expected, actual);
        return actual;
    }

    /// <summary>GETs a path and returns its body (asserting 200), to compare state before and after a refused change.</summary>
    public static async Task<string> SnapshotAsync(this GuardedHost host, string path)
    {
        using var response = await host.GetAdminAsync(path);
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"Expected 200 for {path}, got {(int)response.StatusCode}: {text}");
        return text;
    }

    /// <summary>
    /// Asserts an RFC 9457 body exactly: type (ASP.NET Core's for the status), title, status, detail, errors when given,
    /// and the traceId ASP.NET Core's writer adds; plus problem+json and no-store.
    /// </summary>
    public static async Task AssertProblemAsync(
        HttpResponseMessage response,
        HttpStatusCode status,
        string title,
        string detail,
        JsonObject? errors = null)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"Expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("no-store", response.Headers.CacheControl?.ToString());

        var actual = JsonNode.Parse(text)!.AsObject();
        var traceId = actual["traceId"]?.GetValue<string>();
        // The trace flags are two hex digits: 01 is sampled, 02 (W3C trace-context level 2) a random trace id.
        Assert.True(traceId is not null && System.Text.RegularExpressions.Regex.IsMatch(traceId, "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"), $"traceId: {traceId}");
        var expected = new JsonObject
        {
            ["type"] = TypeFor(status),
            ["title"] = title,
            ["status"] = (int)status,
            ["detail"] = detail,
            ["traceId"] = traceId,
        };
        if (errors is not null)
        {
            expected["errors"] = errors;
        }

        AssertJsonEqual(expected, actual);
    }

    /// <summary>A 400 whose errors object is exactly <paramref name="errors"/> (field → messages).</summary>
    public static Task AssertInvalidAsync(HttpResponseMessage response, JsonObject errors) =>
        AssertProblemAsync(response, HttpStatusCode.BadRequest, "Invalid request", "See errors for what is wrong with each field; nothing was changed.", errors);

    /// <summary>An errors object: each field with its messages.</summary>
    public static JsonObject FieldErrors(params (string Field, string[] Messages)[] fields)
    {
        var errors = new JsonObject();
        foreach (var (field, messages) in fields)
        {
            errors[field] = new JsonArray([.. messages.Select(m => (JsonNode?)JsonValue.Create(m))]);
        }

        return errors;
    }

    public static JsonObject Account(string id, long balance, long? cap, long spent, int freeLeft, string status = "active") => new()
    {
        ["id"] = id,
        ["balance_micro"] = balance,
        ["monthly_cap_micro"] = cap,
        ["spent_this_month_micro"] = spent,
        ["free_calls_left"] = freeLeft,
        ["status"] = status,
    };

    public static JsonObject Row(
        long id,
        string account,
        string kind,
        long amount,
        long balanceAfter,
        string? tool = null,
        string? requestId = null,
        bool free = false,
        string? note = null,
        string timestamp = StartText) => new()
    {
        ["id"] = id,
        ["account"] = account,
        ["kind"] = kind,
        ["amount_micro"] = amount,
        ["balance_after_micro"] = balanceAfter,
        ["tool"] = tool,
        ["request_id"] = requestId,
        ["free"] = free,
        ["note"] = note,
        ["timestamp"] = timestamp,
    };

    public static JsonObject Page(long? nextCursor, params JsonObject[] rows) => new()
    {
        ["entries"] = new JsonArray([.. rows]),
        ["next_cursor"] = nextCursor,
    };

    /// <summary>The seed rows the sample's empty ledger starts with (alice's and bob's initial balances).</summary>
    public static JsonObject AliceSeed() => Row(1, "alice", "top_up", 1_000_000, 1_000_000, note: "seed");

    public static JsonObject BobSeed() => Row(2, "bob", "top_up", 240, 240, note: "seed");

    /// <summary>A tools/call as <paramref name="apiKey"/> with a fixed request id, so ledger rows can be asserted exactly.</summary>
    public static Task<HttpResponseMessage> CallToolAsync(this GuardedHost host, string apiKey, string tool, object arguments, string requestId, int id = 1) =>
        host.PostMcpAsync(ToolCall(tool, arguments, id), apiKey: apiKey, headers: new Dictionary<string, string> { ["X-Request-Id"] = requestId });

    /// <summary>The single value of a response header.</summary>
    public static string Header(HttpResponseMessage response, string name) => Assert.Single(response.Headers.GetValues(name));

    /// <summary>Asserts a JSON-RPC error body exactly, with <c>data</c> holding reason, request_id and <paramref name="data"/>.</summary>
    public static async Task AssertJsonRpcRefusalAsync(
        HttpResponseMessage response, HttpStatusCode status, int code, string message, string reason, string requestId, int id = 1, JsonObject? data = null)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"Expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.Equal("application/json; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        var expectedData = new JsonObject { ["reason"] = reason, ["request_id"] = requestId };
        foreach (var (key, value) in data ?? [])
        {
            expectedData[key] = value?.DeepClone();
        }

        AssertJsonEqual(
            new JsonObject
            {
                ["jsonrpc"] = "2.0",
                ["id"] = id,
                ["error"] = new JsonObject { ["code"] = code, ["message"] = message, ["data"] = expectedData },
            },
            JsonNode.Parse(text));
    }

    private static string TypeFor(HttpStatusCode status) => (int)status switch
    {
        400 => "https://tools.ietf.org/html/rfc9110#section-15.5.1",
        401 => "https://tools.ietf.org/html/rfc9110#section-15.5.2",
        403 => "https://tools.ietf.org/html/rfc9110#section-15.5.4",
        404 => "https://tools.ietf.org/html/rfc9110#section-15.5.5",
        409 => "https://tools.ietf.org/html/rfc9110#section-15.5.10",
        413 => "https://tools.ietf.org/html/rfc9110#section-15.5.14",
        415 => "https://tools.ietf.org/html/rfc9110#section-15.5.16",
        _ => throw new ArgumentOutOfRangeException(nameof(status), status, "No problem type known for this status."),
    };
}
