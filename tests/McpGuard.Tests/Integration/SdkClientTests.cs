using System.Text.Json;
using McpGuard.Tests.Infrastructure;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace McpGuard.Tests.Integration;

/// <summary>The real C# SDK client, over real HTTP, against the sample behind McpGuard.</summary>
public sealed class SdkClientTests : IAsyncLifetime
{
    private GuardedHost _host = null!;

    public async Task InitializeAsync() => _host = await GuardedHost.StartSampleAsync();

    public async Task DisposeAsync() => await _host.DisposeAsync();

    private async Task<McpClient> ConnectAsync()
    {
        var transport = new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = _host.McpEndpoint,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = $"Bearer {DemoKeys.Alice}" },
        });
        return await McpClient.CreateAsync(transport);
    }

    [Fact]
    public async Task Client_lists_the_sample_tools_and_calls_echo()
    {
        await using var client = await ConnectAsync();

        var tools = await client.ListToolsAsync();
        Assert.Equal(["add", "echo", "fail", "premium_report", "search", "slow"], tools.Select(t => t.Name).Order());

        var result = await client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "hello through the guard" });
        Assert.NotEqual(true, result.IsError);
        var text = Assert.IsType<TextContentBlock>(Assert.Single(result.Content));
        Assert.Equal("hello through the guard", text.Text);
    }

    [Theory]
    [InlineData("argument", "invalid_parameter", "kind=argument was asked to fail: the argument is rejected. (Parameter 'kind')", false, "fix_request")]
    [InlineData("not_found", "not_found", "The requested item was not found.", false, "fix_request")]
    [InlineData("forbidden", "forbidden", "This operation is not permitted for the caller.", false, "do_not_retry")]
    [InlineData("timeout", "timeout", "The operation timed out.", true, "retry_later")]
    [InlineData("crash", "internal_error", "The tool failed unexpectedly.", false, "do_not_retry")]
    public async Task Tool_exceptions_become_error_results_with_a_stable_code(string kind, string reason, string message, bool retryable, string action)
    {
        await using var client = await ConnectAsync();

        var result = await client.CallToolAsync("fail", new Dictionary<string, object?> { ["kind"] = kind });

        Assert.True(result.IsError);
        var text = Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text;
        var lines = text.Split('\n');
        Assert.Equal($"**Error code:** {reason}", lines[0]);
        Assert.Equal(message, lines[1]);
        Assert.Equal(3, lines.Length);
        var structured = result.StructuredContent!.Value;
        Assert.Equal(reason, structured.GetProperty("reason").GetString());
        Assert.Equal(retryable, structured.GetProperty("retryable").GetBoolean());
        Assert.Equal(action, structured.GetProperty("action").GetString());
        Assert.StartsWith("req_", structured.GetProperty("request_id").GetString(), StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", text, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", text, StringComparison.Ordinal);
        Assert.DoesNotContain("10.0.0.7", text, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", structured.GetRawText(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_argument_of_the_wrong_type_is_invalid_parameter_not_internal_error()
    {
        await using var client = await ConnectAsync();

        var result = await client.CallToolAsync("add", new Dictionary<string, object?> { ["a"] = "x", ["b"] = 2 });

        Assert.True(result.IsError);
        var text = Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text;
        Assert.Equal(
            "**Error code:** invalid_parameter\nAn argument does not have the type the tool's input schema asks for.\nCheck the tool's input schema (tools/list), fix the arguments and call again.",
            text);
        Assert.Equal("invalid_parameter", result.StructuredContent!.Value.GetProperty("reason").GetString());
        Assert.DoesNotContain(_host.Logs.Entries, e => e.Level >= Microsoft.Extensions.Logging.LogLevel.Error);
    }

    [Fact]
    public async Task A_crashing_tool_is_logged_once_with_the_request_id()
    {
        await using var client = await ConnectAsync();

        var result = await client.CallToolAsync("fail", new Dictionary<string, object?> { ["kind"] = "crash" });

        var requestId = result.StructuredContent!.Value.GetProperty("request_id").GetString()!;
        var failures = _host.Logs.Entries.Where(e => e.Exception is InvalidOperationException).ToList();
        var entry = Assert.Single(failures);
        Assert.Equal(3001, entry.EventId.Id);
        Assert.Contains(requestId, entry.Message, StringComparison.Ordinal);
    }
}
