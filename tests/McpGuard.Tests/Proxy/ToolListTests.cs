using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using CsCheck;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using ModelContextProtocol.Client;

namespace McpGuard.Tests.Proxy;

/// <summary>
/// <c>tools/list</c> through the proxy: each caller sees only the tools its scopes allow, paused tools marked and archived
/// ones hidden (or as configured), whether the upstream answers with JSON or an event stream, in whatever framing SSE
/// allows; and a list the proxy cannot read for certain never reaches the caller.
/// </summary>
public sealed class ToolListTests
{
    [Fact]
    public async Task Each_caller_sees_the_tools_its_scopes_allow_with_paused_tools_marked_and_archived_ones_hidden()
    {
        await using var upstream = await Upstream.StartMcpAsync();
        await using var guard = await ProxyTests.StartProxyAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["McpGuard:Tools:slow:Status"] = "Paused",
            ["McpGuard:Tools:fail:Status"] = "Archived",
        });
        await guard.Services.GetRequiredService<IMcpGuardToolStatusStore>().SetStatusAsync("progress", McpGuardToolStatus.Paused, CancellationToken.None);

        await using var alice = await ConnectAsync(guard, DemoKeys.Alice);
        await using var bob = await ConnectAsync(guard, DemoKeys.Bob);
        var aliceTools = await alice.ListToolsAsync();
        var bobTools = await bob.ListToolsAsync();

        Assert.Equal(["add", "echo", "premium_report", "progress", "search", "slow"], aliceTools.Select(t => t.Name).Order(StringComparer.Ordinal));
        Assert.Equal(["add", "echo", "progress", "search", "slow"], bobTools.Select(t => t.Name).Order(StringComparer.Ordinal));
        Assert.Equal(
            [("add", null), ("echo", null), ("premium_report", null), ("progress", "paused"), ("search", null), ("slow", "paused")],
            aliceTools.OrderBy(t => t.Name, StringComparer.Ordinal).Select(t => (t.Name, t.ProtocolTool.Meta?["mcpguard/status"]?.GetValue<string>())));
        // The rest of each tool is the upstream's own.
        Assert.Equal("Adds two integers.", aliceTools.Single(t => t.Name == "add").Description);
    }

    [Fact]
    public async Task Paused_and_archived_tools_are_shown_as_configured()
    {
        await using var upstream = await Upstream.StartMcpAsync();
        await using var guard = await ProxyTests.StartProxyAsync(upstream.Url, new Dictionary<string, string?>
        {
            ["McpGuard:Tools:slow:Status"] = "Paused",
            ["McpGuard:Tools:fail:Status"] = "Archived",
            ["McpGuard:Upstream:PausedTools"] = "Hide",
            ["McpGuard:Upstream:ArchivedTools"] = "Mark",
        });

        await using var alice = await ConnectAsync(guard, DemoKeys.Alice);
        var tools = await alice.ListToolsAsync();

        Assert.Equal(
            [("add", null), ("echo", null), ("fail", "archived"), ("premium_report", null), ("progress", null), ("search", null)],
            tools.OrderBy(t => t.Name, StringComparer.Ordinal).Select(t => (t.Name, t.ProtocolTool.Meta?["mcpguard/status"]?.GetValue<string>())));
    }

    [Theory]
    [InlineData("duplicate name", """{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"t0","name":"t4","inputSchema":{}}]}}""")]
    [InlineData("duplicate tools", """{"jsonrpc":"2.0","id":1,"result":{"tools":[],"tools":[{"name":"t4","inputSchema":{}}]}}""")]
    [InlineData("tools not an array", """{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"t4"}}}""")]
    [InlineData("not JSON", """{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"t4"}""")]
    [InlineData("another id", """{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"t4","inputSchema":{}}]}}""")]
    public async Task A_list_the_proxy_cannot_read_for_certain_is_not_passed_on(string name, string body)
    {
        await using var upstream = await Upstream.StartAsync(async context =>
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(body);
        });
        await using var guard = await StartListProxyAsync(upstream);

        using var response = await guard.PostMcpAsync(ListRequest, headers: new Dictionary<string, string> { ["X-Request-Id"] = "req-" + name.Replace(' ', '-') });

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":1,"error":{"code":-31501,"message":"Upstream error: the tools/list answer of the MCP server could not be read, so it was not passed on.","data":{"reason":"upstream_error","request_id":"req-"""
                + name.Replace(' ', '-') + "\"}}}",
            await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("duplicate member in an event", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]},\"result\":{\"tools\":[{\"name\":\"t4\",\"inputSchema\":{}}]}}\n\n")]
    [InlineData("id 1.0", "data: {\"jsonrpc\":\"2.0\",\"id\":1.0,\"result\":{\"tools\":[{\"name\":\"t4\",\"inputSchema\":{}}]}}\n\n")]
    [InlineData("an event that is not JSON", "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"t4\"}\n\n")]
    [InlineData("a batch", "data: [{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"t4\",\"inputSchema\":{}}]}}]\n\n")]
    public async Task An_event_stream_the_proxy_cannot_read_for_certain_is_not_passed_on(string name, string body)
    {
        await using var upstream = await Upstream.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(body);
        });
        await using var guard = await StartListProxyAsync(upstream);

        using var response = await guard.PostMcpAsync(ListRequest, headers: new Dictionary<string, string> { ["X-Request-Id"] = "req-sse" });

        Assert.True(response.StatusCode == HttpStatusCode.BadGateway, name);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":1,"error":{"code":-31501,"message":"Upstream error: the tools/list answer of the MCP server could not be read, so it was not passed on.","data":{"reason":"upstream_error","request_id":"req-sse"}}}""",
            await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("a byte order mark", 200, "\uFEFFdata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"t1\"},{\"name\":\"t4\"}]}}\n\n")]
    [InlineData("status 201", 201, "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"t1\"},{\"name\":\"t4\"}]}}\n\n")]
    [InlineData("event ids", 200, "id: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"t1\"},{\"name\":\"t4\"}]}}\n\n")]
    public async Task Every_successful_list_is_filtered(string name, int status, string body)
    {
        await using var upstream = await Upstream.StartAsync(async context =>
        {
            context.Response.StatusCode = status;
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(body);
        });
        await using var guard = await StartListProxyAsync(upstream);

        using var response = await guard.PostMcpAsync(ListRequest);

        Assert.Equal(status, (int)response.StatusCode);
        Assert.True(
            "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"t1\"}]}}\n\n" == await response.Content.ReadAsStringAsync(), name);
    }

    private const string ListRequest = """{"jsonrpc":"2.0","id":1,"method":"tools/list"}""";

    // Tool tN needs: t0 nothing, t1 "a", t2 "b", t3 "a" and "b", t4 "c". Alice holds "a".
    private static readonly string[][] RequiredScopes = [[], ["a"], ["b"], ["a", "b"], ["c"]];

    private static Task<GuardedHost> StartListProxyAsync(Upstream upstream)
    {
        var configuration = GuardConfiguration.ApiKeys(GuardConfiguration.Alice("a")).With(new Dictionary<string, string?>
        {
            ["McpGuard:Upstream:Url"] = upstream.Url.ToString(),
            ["McpGuard:Store"] = "InMemory",
        });
        for (var i = 0; i < RequiredScopes.Length; i++)
        {
            for (var j = 0; j < RequiredScopes[i].Length; j++)
            {
                configuration[$"McpGuard:Tools:t{i}:Scopes:{j}"] = RequiredScopes[i][j];
            }
        }

        return GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")).AddMcpGuardProxy(),
            app => app.MapMcpGuardProxy("/mcp"),
            configuration);
    }

    /// <summary>One generated upstream answer to <c>tools/list</c>: the tools it lists, and how its bytes are framed.</summary>
    public sealed record ListAnswer(int[] Tools, bool EventStream, string[] LineEndings, bool Pretty, bool EventFields, int NotificationsBefore, int NotificationsAfter, bool Comment, bool FinalLineEnding)
    {
        public override string ToString() =>
            $"tools [{string.Join(",", Tools)}], {(EventStream ? "SSE" : "JSON")}, endings [{string.Join(",", LineEndings.Select(e => e.Replace("\r", "CR").Replace("\n", "LF")))}], pretty {Pretty}, fields {EventFields}, notifications {NotificationsBefore}+{NotificationsAfter}, comment {Comment}, last line ending {FinalLineEnding}";
    }

    private static readonly Gen<ListAnswer> Answers =
        from tools in Gen.Int[0, RequiredScopes.Length - 1].Array[0, 8]
        from eventStream in Gen.Bool
        from endings in Gen.OneOf(Gen.Const("\n"), Gen.Const("\r\n"), Gen.Const("\r")).Array[1, 3]
        from pretty in Gen.Bool
        from fields in Gen.Bool
        from before in Gen.Int[0, 2]
        from after in Gen.Int[0, 2]
        from comment in Gen.Bool
        from finalEnding in Gen.Bool
        select new ListAnswer(tools, eventStream, endings, pretty, fields, before, after, comment, finalEnding);

    [Fact]
    public async Task Whatever_the_framing_the_caller_sees_exactly_the_allowed_tools_and_every_other_message_unchanged()
    {
        ListAnswer? current = null;
        await using var upstream = await Upstream.StartAsync(async context =>
        {
            var answer = current!;
            context.Response.ContentType = answer.EventStream ? "text/event-stream" : "application/json";
            await context.Response.WriteAsync(Frame(answer));
        });
        await using var guard = await StartListProxyAsync(upstream);

        await Answers.SampleAsync(
            async answer =>
            {
                current = answer;
                using var response = await guard.PostMcpAsync(ListRequest);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var messages = ParseMessages(await response.Content.ReadAsStringAsync(), answer.EventStream);

                // An event stream that ends without its last empty line never dispatches its last event.
                var sent = Messages(answer);
                if (answer.EventStream && !answer.FinalLineEnding)
                {
                    sent.RemoveAt(sent.Count - 1);
                }

                Assert.Equal(sent.Count, messages.Count);
                for (var i = 0; i < sent.Count; i++)
                {
                    if (sent[i]["id"] is null)
                    {
                        Assert.True(JsonNode.DeepEquals(sent[i], messages[i]), $"notification {i} changed: {messages[i]}");
                        continue;
                    }

                    var listed = messages[i]["result"]!["tools"]!.AsArray().Select(t => t!["name"]!.GetValue<string>());
                    var allowed = answer.Tools.Where(t => RequiredScopes[t].All(s => s == "a")).Select(t => $"t{t}");
                    Assert.Equal(allowed, listed);
                }
            },
            iter: 300,
            threads: 1,
            print: a => a.ToString());
    }

    private static List<JsonObject> Messages(ListAnswer answer)
    {
        JsonObject Notification(int n) => new() { ["jsonrpc"] = "2.0", ["method"] = "notifications/message", ["params"] = new JsonObject { ["level"] = "info", ["data"] = $"line {n}\nwith a break" } };
        var tools = new JsonArray([.. answer.Tools.Select(t => (JsonNode)new JsonObject { ["name"] = $"t{t}", ["description"] = $"tool {t}", ["inputSchema"] = new JsonObject { ["type"] = "object" } })]);
        var result = new JsonObject { ["jsonrpc"] = "2.0", ["id"] = 1, ["result"] = new JsonObject { ["tools"] = tools } };
        return answer.EventStream
            ? [.. Enumerable.Range(0, answer.NotificationsBefore).Select(Notification), result, .. Enumerable.Range(10, answer.NotificationsAfter).Select(Notification)]
            : [result];
    }

    private static string Frame(ListAnswer answer)
    {
        var messages = Messages(answer);
        var options = new JsonSerializerOptions { WriteIndented = answer.Pretty };
        if (!answer.EventStream)
        {
            return messages[0].ToJsonString(options);
        }

        var lines = new List<string>();
        for (var i = 0; i < messages.Count; i++)
        {
            if (answer.Comment)
            {
                lines.Add(": keep-alive");
            }

            if (answer.EventFields)
            {
                lines.Add("event: message");
                lines.Add($"id: event-{i}");
            }

            // Pretty JSON spans several data lines, which SSE joins with line feeds: still the same JSON.
            lines.AddRange(messages[i].ToJsonString(options).Split('\n').Select((line, j) => j % 2 == 0 ? "data: " + line : "data:" + line));
            lines.Add(string.Empty);
        }

        var text = new StringBuilder();
        var previous = string.Empty;
        for (var i = 0; i < lines.Count; i++)
        {
            text.Append(lines[i]);
            if (i < lines.Count - 1 || answer.FinalLineEnding)
            {
                // CR ending one line and LF ending an empty one would read as one CRLF: the empty line would be lost.
                var ending = answer.LineEndings[i % answer.LineEndings.Length];
                ending = previous == "\r" && lines[i].Length == 0 && ending == "\n" ? "\r\n" : ending;
                text.Append(ending);
                previous = ending;
            }
        }

        return text.ToString();
    }

    /// <summary>The messages of a response as a client reads them: an SSE parser after the specification (CR, LF and CRLF line ends).</summary>
    private static List<JsonNode> ParseMessages(string body, bool eventStream)
    {
        if (!eventStream)
        {
            return [JsonNode.Parse(body)!];
        }

        var messages = new List<JsonNode>();
        var data = new List<string>();
        foreach (var line in body.Split(["\r\n", "\r", "\n"], StringSplitOptions.None))
        {
            if (line.Length == 0)
            {
                if (data.Count > 0)
                {
                    messages.Add(JsonNode.Parse(string.Join('\n', data))!);
                    data.Clear();
                }

                continue;
            }

            if (line.StartsWith("data:", StringComparison.Ordinal))
            {
                data.Add(line.Length > 5 && line[5] == ' ' ? line[6..] : line[5..]);
            }
        }

        return messages;
    }

    private static async Task<McpClient> ConnectAsync(GuardedHost guard, string key) =>
        await McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = guard.McpEndpoint,
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = $"Bearer {key}" },
        }));
}
