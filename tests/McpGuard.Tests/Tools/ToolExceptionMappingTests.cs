using System.ComponentModel;
using System.Text.Json;
using McpGuard.Sample;
using McpGuard.Tests.Infrastructure;
using McpGuard.Tools;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Tests.Tools;

/// <summary>An exception a tool author defines; its message holds something the caller must never see.</summary>
public class QuotaExceededException(int limit) : Exception($"quota {limit} exceeded for tenant acme (db=10.0.0.7)")
{
    public int Limit { get; } = limit;
}

public sealed class MonthlyQuotaExceededException(int limit) : QuotaExceededException(limit);

/// <summary>Tools that fail in every way the mapping tests need.</summary>
[McpServerToolType]
public sealed class MappingTestTools
{
    [McpServerTool(Name = "quota"), Description("Fails with a QuotaExceededException.")]
    public static string Quota() => throw new QuotaExceededException(100);

    [McpServerTool(Name = "monthly_quota"), Description("Fails with a type derived from QuotaExceededException.")]
    public static string MonthlyQuota() => throw new MonthlyQuotaExceededException(3000);

    [McpServerTool(Name = "guard_error"), Description("Fails with an McpGuardException carrying everything.")]
    public static string GuardError() => throw new McpGuardException(
        "subscriber_not_found",
        "No subscriber has id 42.",
        suggestion: "List subscribers first, then call again with one of their ids.",
        retryable: false,
        details: new Dictionary<string, object?> { ["subscriber_id"] = 42L, ["list_tool"] = "list_subscribers", ["archived"] = true },
        innerException: new InvalidOperationException("row 42 missing in secret_table"));

    [McpServerTool(Name = "guard_known"), Description("Fails with an McpGuardException using a catalog reason and nothing else.")]
    public static string GuardKnown() => throw new McpGuardException(McpGuardReasons.ToolPaused, "The report generator is paused for maintenance.");

    [McpServerTool(Name = "protocol_error"), Description("Fails with an McpProtocolException carrying the given code.")]
    public static string ProtocolError(int code) => throw new McpProtocolException($"Widget refused with {code}.", (McpErrorCode)code);

    [McpServerTool(Name = "argument_null"), Description("Fails with an ArgumentNullException.")]
    public static string ArgumentNull() => throw new ArgumentNullException("widget");

    [McpServerTool(Name = "ok"), Description("Succeeds.")]
    public static string Ok() => "fine";
}

/// <summary>A server built by the test: the guard, the test tools, and a custom exception mapping.</summary>
public sealed class MappingServerHost : IAsyncLifetime
{
    public const string RequestId = "mapping-test-1";

    public GuardedHost Host { get; private set; } = null!;

    public async Task InitializeAsync() =>
        Host = await GuardedHost.StartAsync(
            builder =>
            {
                builder.Services.AddMcpGuard();
                builder.Services.AddMcpServer(o => o.ServerInfo = new() { Name = "mapping-tests", Version = "1.0.0" })
                    .WithHttpTransport()
                    .WithTools<MappingTestTools>()
                    .WithMcpGuard(tools => tools.Map<QuotaExceededException>(ex => new McpGuardException("quota_exceeded", $"The daily quota of {ex.Limit} calls is used up.",
                        suggestion: "Wait until tomorrow (UTC).",
                        retryable: true,
                        details: new Dictionary<string, object?> { ["limit"] = ex.Limit })));
            },
            app =>
            {
                app.UseMcpGuard();
                app.MapMcp("/mcp");
            });

    public async Task<McpClient> ConnectAsync()
    {
        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = Host.McpEndpoint,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["X-Request-Id"] = RequestId },
        });
        return await McpClient.CreateAsync(transport);
    }

    public async Task DisposeAsync() => await Host.DisposeAsync();
}

public sealed class ToolExceptionMappingTests(MappingServerHost server) : IClassFixture<MappingServerHost>
{
    private static string SlugRule(string reason) => $"A reason is a snake_case slug of a-z, 0-9 and '_' (got '{reason}'). (Parameter 'reason')";

    private static McpGuardToolError Map(Exception exception, Action<McpGuardToolOptions>? configure = null)
    {
        var options = new McpGuardToolOptions();
        configure?.Invoke(options);
        return new McpGuardToolExceptionFilter(options).Map(exception);
    }

    private static void AssertBuiltIn(McpGuardToolError error, string reason, string message)
    {
        Assert.Equal(reason, error.Reason);
        Assert.Equal(message, error.Message);
        Assert.Null(error.Suggestion);
        Assert.Null(error.Retryable);
        Assert.Empty(error.Details);
    }

    // ---- McpGuardToolExceptionFilter.Map ----

    [Fact]
    public void User_mappings_are_tried_first_and_in_the_order_added()
    {
        var error = Map(new InvalidOperationException("boom"), o => o
            .Map<ArgumentException>(_ => new McpGuardException("first_unrelated", "Not this one."))
            .Map<InvalidOperationException>(_ => new McpGuardException("second", "The second mapping."))
            .Map<InvalidOperationException>(_ => new McpGuardException("third", "The third mapping.")));

        Assert.Equal("second", error.Reason);
        Assert.Equal("The second mapping.", error.Message);
    }

    [Fact]
    public void A_mapping_for_a_base_type_added_first_wins_over_a_more_specific_one_added_later()
    {
        var error = Map(new ArgumentNullException("x"), o => o
            .Map<ArgumentException>(_ => new McpGuardException("broad", "Broad."))
            .Map<ArgumentNullException>(_ => new McpGuardException("specific", "Specific.")));

        Assert.Equal("broad", error.Reason);
    }

    [Fact]
    public void A_mapping_matches_derived_exception_types()
    {
        var error = Map(new MonthlyQuotaExceededException(3000), o => o
            .Map<QuotaExceededException>(ex => new McpGuardException("quota_exceeded", $"Quota {ex.Limit}.", retryable: true)));

        Assert.Equal("quota_exceeded", error.Reason);
        Assert.Equal("Quota 3000.", error.Message);
        Assert.Equal(true, error.Retryable);
    }

    [Fact]
    public void A_mapping_receives_the_thrown_exception()
    {
        var thrown = new QuotaExceededException(7);
        Exception? seen = null;

        Map(thrown, o => o.Map<QuotaExceededException>(ex =>
        {
            seen = ex;
            return new McpGuardException("quota_exceeded", "Used up.");
        }));

        Assert.Same(thrown, seen);
    }

    [Fact]
    public void User_mappings_override_the_built_in_ones_even_for_McpGuardException()
    {
        var error = Map(new McpGuardException("own_reason", "Own message."), o => o.Map<Exception>(_ => new McpGuardException("everything", "Everything is mapped.")));

        Assert.Equal("everything", error.Reason);
        Assert.Equal("Everything is mapped.", error.Message);
    }

    [Fact]
    public void An_exception_no_user_mapping_matches_falls_through_to_the_built_ins()
    {
        var error = Map(new TimeoutException("db at 10.0.0.7"), o => o.Map<QuotaExceededException>(_ => new McpGuardException("quota_exceeded", "Used up.")));

        AssertBuiltIn(error, McpGuardReasons.Timeout, "The operation timed out.");
    }

    [Fact]
    public void McpGuardException_keeps_its_reason_message_suggestion_retryability_and_details()
    {
        var details = new Dictionary<string, object?> { ["subscriber_id"] = 42L, ["list_tool"] = "list_subscribers" };
        var exception = new McpGuardException("subscriber_not_found", "No subscriber has id 42.", "List subscribers first.", retryable: true, details);

        var error = Map(exception);

        Assert.Equal("subscriber_not_found", error.Reason);
        Assert.Equal("No subscriber has id 42.", error.Message);
        Assert.Equal("List subscribers first.", error.Suggestion);
        Assert.Equal(true, error.Retryable);
        Assert.Same(details, error.Details);
    }

    [Fact]
    public void McpGuardException_without_optional_parts_leaves_them_to_the_catalog()
    {
        var error = Map(new McpGuardException(McpGuardReasons.NotFound, "No such invoice."));

        AssertBuiltIn(error, McpGuardReasons.NotFound, "No such invoice.");
    }

    [Fact]
    public void A_derived_McpGuardException_is_mapped_like_its_base()
    {
        var error = Map(new DerivedGuardException());

        Assert.Equal("derived_reason", error.Reason);
        Assert.Equal("Derived message.", error.Message);
    }

    private sealed class DerivedGuardException() : McpGuardException("derived_reason", "Derived message.");

    [Fact]
    public void ArgumentException_becomes_invalid_parameter_with_its_message()
    {
        AssertBuiltIn(Map(new ArgumentException("Pick a date in the future.", "date")), McpGuardReasons.InvalidParameter, "Pick a date in the future. (Parameter 'date')");
        AssertBuiltIn(Map(new ArgumentException("No parameter name.")), McpGuardReasons.InvalidParameter, "No parameter name.");
    }

    [Fact]
    public void ArgumentNullException_becomes_invalid_parameter_with_its_message()
    {
        AssertBuiltIn(Map(new ArgumentNullException("widget")), McpGuardReasons.InvalidParameter, "Value cannot be null. (Parameter 'widget')");
    }

    [Fact]
    public void ArgumentOutOfRangeException_becomes_invalid_parameter_with_its_message()
    {
        AssertBuiltIn(
            Map(new ArgumentOutOfRangeException("ms", 500_000, "ms must be between 0 and 120000.")),
            McpGuardReasons.InvalidParameter,
            "ms must be between 0 and 120000. (Parameter 'ms')\nActual value was 500000.");
    }

    [Theory]
    [InlineData(typeof(KeyNotFoundException))]
    [InlineData(typeof(FileNotFoundException))]
    public void Not_found_exceptions_become_not_found_with_a_generic_message(Type type)
    {
        var exception = (Exception)Activator.CreateInstance(type, "record 42 in table secret_customers")!;

        var error = Map(exception);

        AssertBuiltIn(error, McpGuardReasons.NotFound, "The requested item was not found.");
        Assert.DoesNotContain("secret", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("42", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnauthorizedAccessException_becomes_forbidden_with_a_generic_message()
    {
        var error = Map(new UnauthorizedAccessException("access to /srv/secret denied"));

        AssertBuiltIn(error, McpGuardReasons.Forbidden, "This operation is not permitted for the caller.");
    }

    [Fact]
    public void TimeoutException_becomes_timeout_with_a_generic_message()
    {
        AssertBuiltIn(Map(new TimeoutException("db at 10.0.0.7 timed out")), McpGuardReasons.Timeout, "The operation timed out.");
    }

    [Fact]
    public void A_cancellation_that_is_not_the_call_being_cancelled_becomes_timeout()
    {
        AssertBuiltIn(Map(new TaskCanceledException("HttpClient.Timeout of 100 seconds elapsed")), McpGuardReasons.Timeout, "The operation timed out.");
    }

    [Theory]
    [InlineData(typeof(InvalidOperationException))]
    [InlineData(typeof(NullReferenceException))]
    [InlineData(typeof(IOException))]
    [InlineData(typeof(Exception))]
    public void Anything_else_becomes_internal_error_with_a_generic_message(Type type)
    {
        var exception = (Exception)Activator.CreateInstance(type, "Server=db;Password=hunter2")!;

        var error = Map(exception);

        AssertBuiltIn(error, McpGuardReasons.InternalError, "The tool failed unexpectedly.");
    }

    // ---- reason validation ----

    [Theory]
    [InlineData("Not_Snake")]
    [InlineData("with space")]
    [InlineData("kebab-case")]
    [InlineData("dotted.reason")]
    [InlineData("caf\u00e9")]
    [InlineData("camelCase")]
    [InlineData("UPPER")]
    public void McpGuardToolError_refuses_a_reason_that_is_not_snake_case(string reason)
    {
        var ex = Assert.Throws<ArgumentException>(() => new McpGuardToolError(reason, "message"));

        Assert.Equal(SlugRule(reason), ex.Message);
        Assert.Equal("reason", ex.ParamName);
    }

    [Theory]
    [InlineData("Not_Snake")]
    [InlineData("kebab-case")]
    [InlineData("with space")]
    public void McpGuardException_refuses_a_reason_that_is_not_snake_case(string reason)
    {
        var ex = Assert.Throws<ArgumentException>(() => new McpGuardException(reason, "message"));

        Assert.Equal(SlugRule(reason), ex.Message);
        Assert.Equal("reason", ex.ParamName);
    }

    [Fact]
    public void Empty_reasons_and_messages_are_refused()
    {
        Assert.Equal("reason", Assert.Throws<ArgumentException>(() => new McpGuardToolError("", "message")).ParamName);
        Assert.Equal("reason", Assert.Throws<ArgumentException>(() => new McpGuardToolError("  ", "message")).ParamName);
        Assert.Equal("reason", Assert.Throws<ArgumentNullException>(() => new McpGuardToolError(null!, "message")).ParamName);
        Assert.Equal("message", Assert.Throws<ArgumentException>(() => new McpGuardToolError("quota_exceeded", " ")).ParamName);
        Assert.Equal("reason", Assert.Throws<ArgumentException>(() => new McpGuardException("", "message")).ParamName);
        Assert.Throws<ArgumentNullException>(() => new McpGuardToolOptions().Map<TimeoutException>(null!));
    }

    [Theory]
    [InlineData("quota_exceeded")]
    [InlineData("a")]
    [InlineData("error_404")]
    [InlineData("parse_error")]
    public void Snake_case_reasons_are_accepted(string reason)
    {
        Assert.Equal(reason, new McpGuardToolError(reason, "m").Reason);
        Assert.Equal(reason, new McpGuardException(reason, "m").Reason);
    }

    // ---- through the real SDK client ----

    private static string[] Lines(CallToolResult result)
    {
        Assert.True(result.IsError);
        return Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text.Split('\n');
    }

    private static List<string> PropertyNames(JsonElement element) => element.EnumerateObject().Select(p => p.Name).ToList();

    [Fact]
    public async Task A_custom_mapping_shows_its_reason_message_suggestion_and_details()
    {
        await using var client = await server.ConnectAsync();

        var result = await client.CallToolAsync("quota", new Dictionary<string, object?>());

        Assert.Equal(["**Error code:** quota_exceeded", "The daily quota of 100 calls is used up.", "Wait until tomorrow (UTC)."], Lines(result));
        var structured = result.StructuredContent!.Value;
        Assert.Equal(["reason", "request_id", "retryable", "action", "limit"], PropertyNames(structured));
        Assert.Equal("quota_exceeded", structured.GetProperty("reason").GetString());
        Assert.Equal(MappingServerHost.RequestId, structured.GetProperty("request_id").GetString());
        Assert.True(structured.GetProperty("retryable").GetBoolean());
        Assert.Equal("retry_later", structured.GetProperty("action").GetString());
        Assert.Equal(100, structured.GetProperty("limit").GetInt32());
        Assert.DoesNotContain("10.0.0.7", structured.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_custom_mapping_covers_derived_exceptions_through_the_server()
    {
        await using var client = await server.ConnectAsync();

        var result = await client.CallToolAsync("monthly_quota", new Dictionary<string, object?>());

        Assert.Equal(["**Error code:** quota_exceeded", "The daily quota of 3000 calls is used up.", "Wait until tomorrow (UTC)."], Lines(result));
    }

    [Fact]
    public async Task A_tool_throwing_McpGuardException_shows_its_reason_message_suggestion_and_details()
    {
        await using var client = await server.ConnectAsync();

        var result = await client.CallToolAsync("guard_error", new Dictionary<string, object?>());

        Assert.Equal(
            ["**Error code:** subscriber_not_found", "No subscriber has id 42.", "List subscribers first, then call again with one of their ids."],
            Lines(result));
        var structured = result.StructuredContent!.Value;
        Assert.Equal(["reason", "request_id", "retryable", "action", "subscriber_id", "list_tool", "archived"], PropertyNames(structured));
        Assert.Equal("subscriber_not_found", structured.GetProperty("reason").GetString());
        Assert.Equal(MappingServerHost.RequestId, structured.GetProperty("request_id").GetString());
        Assert.False(structured.GetProperty("retryable").GetBoolean());
        Assert.Equal("fix_request", structured.GetProperty("action").GetString());
        Assert.Equal(42, structured.GetProperty("subscriber_id").GetInt64());
        Assert.Equal("list_subscribers", structured.GetProperty("list_tool").GetString());
        Assert.True(structured.GetProperty("archived").GetBoolean());
        Assert.DoesNotContain("secret_table", structured.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_McpGuardException_with_a_catalog_reason_takes_the_catalog_suggestion_and_retryability()
    {
        await using var client = await server.ConnectAsync();

        var result = await client.CallToolAsync("guard_known", new Dictionary<string, object?>());

        Assert.Equal(
            ["**Error code:** tool_paused", "The report generator is paused for maintenance.", "The publisher paused this tool; retry later or pick another."],
            Lines(result));
        var structured = result.StructuredContent!.Value;
        Assert.Equal(["reason", "request_id", "retryable", "action"], PropertyNames(structured));
        Assert.True(structured.GetProperty("retryable").GetBoolean());
        Assert.Equal("retry_later", structured.GetProperty("action").GetString());
    }

    [Fact]
    public async Task A_built_in_mapping_still_applies_next_to_a_custom_one()
    {
        await using var client = await server.ConnectAsync();

        var result = await client.CallToolAsync("argument_null", new Dictionary<string, object?>());

        Assert.Equal(
            ["**Error code:** invalid_parameter", "Value cannot be null. (Parameter 'widget')", "Check the tool's input schema (tools/list), fix the arguments and call again."],
            Lines(result));
    }

    [Theory]
    [InlineData(-32602)]
    [InlineData(-32603)]
    [InlineData(-40404)]
    public async Task McpProtocolException_from_a_tool_stays_a_json_rpc_error_with_its_code(int code)
    {
        await using var client = await server.ConnectAsync();

        var ex = await Assert.ThrowsAsync<McpProtocolException>(() => client.CallToolAsync("protocol_error", new Dictionary<string, object?> { ["code"] = code }).AsTask());

        Assert.Equal((McpErrorCode)code, ex.ErrorCode);
        Assert.Equal($"Request failed (remote): Widget refused with {code}.", ex.Message);
    }

    [Fact]
    public async Task The_server_keeps_serving_after_tool_failures()
    {
        await using var client = await server.ConnectAsync();

        await client.CallToolAsync("guard_error", new Dictionary<string, object?>());
        var result = await client.CallToolAsync("ok", new Dictionary<string, object?>());

        Assert.NotEqual(true, result.IsError);
        Assert.Equal("fine", Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text);
    }
}
