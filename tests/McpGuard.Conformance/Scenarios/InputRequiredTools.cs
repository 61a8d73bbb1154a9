using System.ComponentModel;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Conformance.Scenarios;

/// <summary>
/// Multi round-trip requests (SEP-2322, scenarios <c>input-required-result-*</c>): a tool or prompt that needs something
/// from the client throws <see cref="InputRequiredException"/>; the SDK answers with an input-required result (2026-07-28)
/// or resolves the requests over the session itself (2025-11-25), and the client retries with <c>inputResponses</c> and
/// the echoed <c>requestState</c>.
/// </summary>
[McpServerToolType]
internal sealed class InputRequiredTools
{
    private const string FixedState = "mcpguard-conformance-state";

    [McpServerTool(Name = "test_input_required_result_elicitation"), Description("Asks for the user's name, then greets them.")]
    public static CallToolResult Elicitation(RequestContext<CallToolRequestParams> context) =>
        Answer(context.Params, "user_name", InputResponse.ElicitResultJsonTypeInfo) is { } reply
            ? Text($"Hello, {Field(reply.Content, "name") ?? "world"}!")
            : throw Need(("user_name", AskName()));

    [McpServerTool(Name = "test_input_required_result_sampling"), Description("Asks the client's model a question, then repeats its answer.")]
    public static CallToolResult Sampling(RequestContext<CallToolRequestParams> context) =>
        Answer(context.Params, "capital_question", InputResponse.CreateMessageResultJsonTypeInfo) is { } reply
            ? Text($"The model said: {reply.Content?.OfType<TextContentBlock>().FirstOrDefault()?.Text ?? "(no text)"}")
            : throw Need(("capital_question", AskModel("What is the capital of France?", 100)));

    [McpServerTool(Name = "test_input_required_result_list_roots"), Description("Asks for the client's roots, then counts them.")]
    public static CallToolResult ListRoots(RequestContext<CallToolRequestParams> context) =>
        Answer(context.Params, "client_roots", InputResponse.ListRootsResultJsonTypeInfo) is { } reply
            ? Text($"The client has {reply.Roots?.Count ?? 0} root(s).")
            : throw Need(("client_roots", InputRequest.ForRootsList(new ListRootsRequestParams())));

    [McpServerTool(Name = "test_input_required_result_request_state"), Description("Hands out a requestState and checks the retry echoes it.")]
    public static CallToolResult RequestState(RequestContext<CallToolRequestParams> context) =>
        context.Params?.RequestState switch
        {
            null => throw Need(FixedState, ("confirm", AskConfirmation())),
            FixedState => Text("state-ok: the echoed requestState is the one the server issued"),
            _ => Text("state-mismatch: the echoed requestState is not the one the server issued"),
        };

    [McpServerTool(Name = "test_input_required_result_multiple_inputs"), Description("Asks for an elicitation, a sample and the roots in one round.")]
    public static CallToolResult MultipleInputs(RequestContext<CallToolRequestParams> context) =>
        context.Params?.InputResponses is { Count: >= 3 }
            ? Text("multiple-inputs-ok: elicitation, sampling and roots answered")
            : throw Need(
                "multi-input-state",
                ("user_name", AskName()),
                ("greeting", AskModel("Generate a greeting", 50)),
                ("client_roots", InputRequest.ForRootsList(new ListRootsRequestParams())));

    [McpServerTool(Name = "test_input_required_result_multi_round"), Description("Needs two rounds of input, with a new requestState each round.")]
    public static CallToolResult MultiRound(RequestContext<CallToolRequestParams> context) =>
        context.Params?.RequestState switch
        {
            null => throw Need("round-1", ("step1", AskText("Step 1: What is your name?", "name"))),
            "round-1" => throw Need("round-2", ("step2", AskText("Step 2: What is your favorite color?", "color"))),
            _ => Text("multi-round-ok"),
        };

    [McpServerTool(Name = "test_incomplete_result_elicitation"), Description("Asks again, instead of failing, when the retry lacks the expected answer.")]
    public static CallToolResult MissingResponse(RequestContext<CallToolRequestParams> context) => Elicitation(context);

    [McpServerTool(Name = "test_input_required_result_tampered_state"), Description("Signs its requestState and refuses a retry whose state does not verify.")]
    public static CallToolResult TamperedState(RequestContext<CallToolRequestParams> context)
    {
        if (context.Params?.RequestState is not { } state)
        {
            throw Need(SignedState.Issue(), ("confirm", AskConfirmation()));
        }

        return SignedState.Verify(state)
            ? Text("tampered-state-ok: the requestState verified")
            : throw new McpProtocolException("requestState failed verification: it was not issued by this server.", McpErrorCode.InvalidParams);
    }

    [McpServerTool(Name = "test_input_required_result_capabilities"), Description("Asks only for what the client declared it can do on this request.")]
    public static CallToolResult Capabilities(RequestContext<CallToolRequestParams> context)
    {
        if (context.Params?.InputResponses is { Count: > 0 })
        {
            return Text("capability-check-ok: input received");
        }

        var declared = context.JsonRpcRequest.Context?.ClientCapabilities;
        var asks = new List<(string, InputRequest)>();
        if (declared?.Sampling is not null)
        {
            asks.Add(("capital_question", AskModel("What is the capital of France?", 100)));
        }

        if (declared?.Elicitation is not null)
        {
            asks.Add(("user_name", AskName()));
        }

        if (declared?.Roots is not null)
        {
            asks.Add(("client_roots", InputRequest.ForRootsList(new ListRootsRequestParams())));
        }

        return asks.Count == 0 ? Text("capability-check-ok: the client declared nothing to ask for") : throw Need([.. asks]);
    }

    internal static T? Answer<T>(RequestParams? request, string key, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
        where T : class =>
        request?.InputResponses is { } responses && responses.TryGetValue(key, out var response) ? response.Deserialize(type) : null;

    internal static InputRequiredException Need(params (string Key, InputRequest Request)[] asks) => Need(null, asks);

    internal static InputRequiredException Need(string? requestState, params (string Key, InputRequest Request)[] asks) =>
        new(asks.ToDictionary(ask => ask.Key, ask => ask.Request, StringComparer.Ordinal), requestState);

    internal static InputRequest AskText(string message, string field) => InputRequest.ForElicitation(new ElicitRequestParams
    {
        Message = message,
        RequestedSchema = new ElicitRequestParams.RequestSchema
        {
            Properties = { [field] = new ElicitRequestParams.StringSchema() },
            Required = [field],
        },
    });

    internal static string? Field(IDictionary<string, JsonElement>? content, string name) =>
        content is not null && content.TryGetValue(name, out var value)
            ? value.ValueKind == JsonValueKind.String ? value.GetString() : value.GetRawText()
            : null;

    private static InputRequest AskName() => AskText("What is your name?", "name");

    private static InputRequest AskConfirmation() => InputRequest.ForElicitation(new ElicitRequestParams
    {
        Message = "Please confirm",
        RequestedSchema = new ElicitRequestParams.RequestSchema
        {
            Properties = { ["ok"] = new ElicitRequestParams.BooleanSchema() },
            Required = ["ok"],
        },
    });

    private static InputRequest AskModel(string question, int maxTokens) => InputRequest.ForSampling(new CreateMessageRequestParams
    {
        Messages = [new SamplingMessage { Role = Role.User, Content = [new TextContentBlock { Text = question }] }],
        MaxTokens = maxTokens,
    });

    private static CallToolResult Text(string text) => new() { Content = [new TextContentBlock { Text = text }] };

    /// <summary>A requestState the client cannot forge: a random nonce and its HMAC under a key made at start-up.</summary>
    private static class SignedState
    {
        private static readonly byte[] Key = RandomNumberGenerator.GetBytes(32);

        public static string Issue()
        {
            var nonce = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
            return $"{nonce}.{Sign(nonce)}";
        }

        public static bool Verify(string state)
        {
            var dot = state.IndexOf('.', StringComparison.Ordinal);
            return dot > 0
                && CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(state[(dot + 1)..]), Encoding.ASCII.GetBytes(Sign(state[..dot])));
        }

        private static string Sign(string nonce) => Convert.ToHexString(HMACSHA256.HashData(Key, Encoding.UTF8.GetBytes(nonce)));
    }
}

/// <summary>A prompt that needs input too: <c>prompts/get</c> answers input-required like <c>tools/call</c> (<c>input-required-result-non-tool-request</c>).</summary>
[McpServerPromptType]
internal sealed class InputRequiredPrompts
{
    [McpServerPrompt(Name = "test_input_required_result_prompt"), Description("Asks what context to use, then builds the prompt with it.")]
    public static GetPromptResult Prompt(RequestContext<GetPromptRequestParams> context) =>
        InputRequiredTools.Answer(context.Params, "user_context", InputResponse.ElicitResultJsonTypeInfo) is { } reply
            ? new GetPromptResult
            {
                Description = "A prompt built with the context the user gave.",
                Messages = [new PromptMessage { Role = Role.User, Content = new TextContentBlock { Text = $"Continue with this context: {InputRequiredTools.Field(reply.Content, "context") ?? "(none)"}" } }],
            }
            : throw InputRequiredTools.Need(("user_context", InputRequiredTools.AskText("What context should the prompt use?", "context")));
}
