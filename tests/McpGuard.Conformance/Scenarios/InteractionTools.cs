using System.ComponentModel;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Conformance.Scenarios;

/// <summary>
/// Tools that talk back to the client while they run: log notifications, progress, sampling and elicitation requests
/// (scenarios <c>tools-call-with-logging</c>, <c>tools-call-with-progress</c>, <c>tools-call-sampling</c>,
/// <c>tools-call-elicitation</c>, <c>elicitation-sep1034-defaults</c>, <c>elicitation-sep1330-enums</c>), and the tool
/// whose stream the server closes so the client must resume it (<c>server-sse-polling</c>, see <see cref="ConformanceMcpServer"/>).
/// </summary>
[McpServerToolType]
internal sealed class InteractionTools
{
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(50);

    [McpServerTool(Name = "test_tool_with_logging"), Description("Sends three log notifications while it runs.")]
    public static async Task<string> WithLogging(McpServer server, CancellationToken cancellationToken)
    {
        var log = server.AsClientLoggerProvider().CreateLogger("conformance");
        foreach (var line in (string[])["Tool execution started", "Tool processing data", "Tool execution completed"])
        {
#pragma warning disable CA1848, CA2254 // Messages for the MCP client, not the server's own log.
            log.LogInformation(line);
#pragma warning restore CA1848, CA2254
            await Task.Delay(Step, cancellationToken);
        }

        return "Tool with logging executed successfully";
    }

    [McpServerTool(Name = "test_tool_with_progress"), Description("Reports progress 0, 50 and 100 of 100 on the request's progress token.")]
    public static async Task<string> WithProgress(McpServer server, RequestContext<CallToolRequestParams> context, CancellationToken cancellationToken)
    {
        if (context.Params?.ProgressToken is not { } token)
        {
            return "No progress token provided";
        }

        foreach (var done in (int[])[0, 50, 100])
        {
            await server.NotifyProgressAsync(token, new ProgressNotificationValue { Progress = done, Total = 100 }, cancellationToken: cancellationToken);
            if (done < 100)
            {
                await Task.Delay(Step, cancellationToken);
            }
        }

        return token.ToString() ?? string.Empty;
    }

    [McpServerTool(Name = "test_sampling"), Description("Asks the client's model to answer the prompt.")]
    public static async Task<string> Sampling(McpServer server, [Description("What to ask the model.")] string prompt, CancellationToken cancellationToken)
    {
        var reply = await server.SampleAsync(
            new CreateMessageRequestParams
            {
                Messages = [new SamplingMessage { Role = Role.User, Content = [new TextContentBlock { Text = prompt }] }],
                MaxTokens = 100,
            },
            cancellationToken);
        var text = reply.Content.OfType<TextContentBlock>().FirstOrDefault()?.Text ?? "(no text)";
        return $"LLM response: {text}";
    }

    [McpServerTool(Name = "test_elicitation"), Description("Asks the user one free-text question.")]
    public static async Task<string> Elicitation(McpServer server, [Description("The question for the user.")] string message, CancellationToken cancellationToken)
    {
        var answer = await server.ElicitAsync(
            new ElicitRequestParams
            {
                Message = message,
                RequestedSchema = new ElicitRequestParams.RequestSchema
                {
                    Properties = { ["response"] = new ElicitRequestParams.StringSchema { Description = "The user's answer" } },
                },
            },
            cancellationToken);
        return Describe(answer);
    }

    [McpServerTool(Name = "test_elicitation_sep1034_defaults"), Description("Elicits one field of each primitive type, each with a default (SEP-1034).")]
    public static async Task<string> ElicitationDefaults(McpServer server, CancellationToken cancellationToken)
    {
        var answer = await server.ElicitAsync(
            new ElicitRequestParams
            {
                Message = "Confirm or change the defaults",
                RequestedSchema = new ElicitRequestParams.RequestSchema
                {
                    Properties =
                    {
                        ["name"] = new ElicitRequestParams.StringSchema { Description = "Name", Default = "John Doe" },
                        ["age"] = new ElicitRequestParams.NumberSchema { Type = "integer", Description = "Age", Default = 30 },
                        ["score"] = new ElicitRequestParams.NumberSchema { Description = "Score", Default = 95.5 },
                        ["status"] = new ElicitRequestParams.UntitledSingleSelectEnumSchema { Description = "Status", Enum = ["active", "inactive", "pending"], Default = "active" },
                        ["verified"] = new ElicitRequestParams.BooleanSchema { Description = "Verified", Default = true },
                    },
                },
            },
            cancellationToken);
        return Describe(answer);
    }

    [McpServerTool(Name = "test_elicitation_sep1330_enums"), Description("Elicits every enum shape: untitled, titled, legacy, single and multi select (SEP-1330).")]
    public static async Task<string> ElicitationEnums(McpServer server, CancellationToken cancellationToken)
    {
        string[] plain = ["option1", "option2", "option3"];
        var answer = await server.ElicitAsync(
            new ElicitRequestParams
            {
                Message = "Pick from each list",
                RequestedSchema = new ElicitRequestParams.RequestSchema
                {
                    Properties =
                    {
                        ["untitledSingle"] = new ElicitRequestParams.UntitledSingleSelectEnumSchema { Description = "One option", Enum = plain },
                        ["titledSingle"] = new ElicitRequestParams.TitledSingleSelectEnumSchema
                        {
                            Description = "One titled option",
                            OneOf = [new() { Const = "value1", Title = "First Option" }, new() { Const = "value2", Title = "Second Option" }, new() { Const = "value3", Title = "Third Option" }],
                        },
                        ["legacyEnum"] = new ElicitRequestParams.LegacyTitledEnumSchema
                        {
                            Description = "One legacy option",
                            Enum = ["opt1", "opt2", "opt3"],
                            EnumNames = ["Option One", "Option Two", "Option Three"],
                        },
                        ["untitledMulti"] = new ElicitRequestParams.UntitledMultiSelectEnumSchema
                        {
                            Description = "Several options",
                            Items = new ElicitRequestParams.UntitledEnumItemsSchema { Enum = plain },
                        },
                        ["titledMulti"] = new ElicitRequestParams.TitledMultiSelectEnumSchema
                        {
                            Description = "Several titled options",
                            Items = new ElicitRequestParams.TitledEnumItemsSchema
                            {
                                AnyOf = [new() { Const = "value1", Title = "First Choice" }, new() { Const = "value2", Title = "Second Choice" }, new() { Const = "value3", Title = "Third Choice" }],
                            },
                        },
                    },
                },
            },
            cancellationToken);
        return Describe(answer);
    }

    [McpServerTool(Name = "test_reconnection"), Description("Answers after the server closed the stream; the client resumes it with Last-Event-ID.")]
    public static string Reconnection() => "Reconnection test completed successfully";

    private static string Describe(ElicitResult answer) =>
        answer.Action == "accept" && answer.Content is { } content
            ? $"User responded: {string.Join(", ", content.Select(field => $"{field.Key}={field.Value}"))}"
            : $"Elicitation {answer.Action}";
}
