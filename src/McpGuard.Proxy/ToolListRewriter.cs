using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using McpGuard.Credits;
using McpGuard.Errors;
using McpGuard.Protocol;
using McpGuard.Tools;
using Microsoft.AspNetCore.Http;

namespace McpGuard.Proxy;

/// <summary>
/// Rewrites the upstream's answer to a list request before the caller sees it, as <c>WithMcpGuard()</c>'s list filters
/// do inside a C# server. A <c>tools/list</c> answer is filtered: a tool whose scopes the caller lacks is left out
/// (<c>McpGuard:Auth:FilterToolList</c>), a paused or archived tool is marked or left out
/// (<c>McpGuard:Upstream:PausedTools</c> / <c>ArchivedTools</c>). Every list it rewrites (tools, and prompts, resources and
/// resource templates when their method is priced: see <see cref="Rewrites"/>) carries each priced item's price in its
/// <c>_meta</c> under <c>mcpguard/price</c>, and the caller's balance in the result's <c>_meta</c> under
/// <c>mcpguard/account</c>. The answer may be one JSON message or an event stream; only the message answering the
/// request changes, every other byte passes as it came. An answer the proxy cannot read for certain is not passed on
/// (502 <c>upstream_error</c>): a list it could not filter could show what the caller must not see.
/// </summary>
internal sealed class ToolListRewriter(IMcpGuardToolStatusStore statuses, IMcpGuardLedgerStore ledger, TimeProvider clock)
{
    private const string StatusMeta = "mcpguard/status";

    internal static readonly JsonDocumentOptions ReadOptions = new() { AllowDuplicateProperties = false, MaxDepth = 256 };

    /// <summary>
    /// Whether the answer to the request of <paramref name="feature"/> is held and rewritten: always a <c>tools/list</c> (filtered by
    /// scope and status); a <c>prompts/list</c>, <c>resources/list</c> or <c>resources/templates/list</c> only when the
    /// method its items are called with (<c>prompts/get</c>, <c>resources/read</c>) is priced, since only prices are added
    /// to them. Any other answer streams through as it comes.
    /// </summary>
    public static bool Rewrites(McpGuardFeature feature) =>
        feature.Envelope is { Kind: McpMessageKind.Request, Method: { } method }
        && (method == McpMethods.ToolsList
            || (List(method) is { ItemMethod: var itemMethod } && feature.State.Credits is { Enabled: true } credits && credits.Price(itemMethod, null) > 0));

    /// <summary>The array a list result holds its items in, and the method an item is called with; null for any other method.</summary>
    private static (string Items, string ItemMethod)? List(string method) => method switch
    {
        McpMethods.ToolsList => ("tools", McpMethods.ToolsCall),
        McpMethods.PromptsList => ("prompts", McpMethods.PromptsGet),
        McpMethods.ResourcesList => ("resources", McpMethods.ResourcesRead),
        McpMethods.ResourcesTemplatesList => ("resourceTemplates", McpMethods.ResourcesRead),
        _ => null,
    };

    public async Task WriteAsync(HttpContext context, McpGuardFeature feature, CapturedBody captured)
    {
        var response = context.Response;
        var bytes = captured.Bytes;
        var eventStream = HttpSyntax.IsEventStream(response.ContentType);
        if (response.StatusCode is >= StatusCodes.Status200OK and < StatusCodes.Status300MultipleChoices && !bytes.IsEmpty)
        {
            byte[]? rewritten;
            try
            {
                rewritten = eventStream
                    ? await RewriteEventStreamAsync(bytes, feature)
                    : HttpSyntax.IsJson(response.ContentType)
                        ? await RewriteMessageAsync(bytes, feature, required: true)
                        : throw new FormatException($"content type '{response.ContentType}'");
            }
            catch (Exception ex) when (ex is JsonException or FormatException or ArgumentException or InvalidOperationException or DecoderFallbackException)
            {
                throw Unreadable(feature, ex);
            }

            if (rewritten is not null)
            {
                bytes = rewritten;
            }
        }

        // An event stream goes out through the event-id filter, which may shorten it: no length for it.
        response.ContentLength = eventStream ? null : bytes.Length;
        await response.Body.WriteAsync(bytes, context.RequestAborted);
    }

    private static void AppendLines(StringBuilder output, IEnumerable<string> lines)
    {
        foreach (var line in lines)
        {
            output.Append(line).Append('\n');
        }
    }

    private static McpGuardEndpointException Unreadable(McpGuardFeature feature, Exception? cause) =>
        new(new McpGuardError(feature.State.Catalog[McpGuardReasons.UpstreamError],
            $"Upstream error: the {feature.Envelope!.Method} answer of the MCP server could not be read, so it was not passed on."), cause);

    /// <summary>The event stream with the answer's event rewritten; null when nothing changed.</summary>
    private async ValueTask<byte[]?> RewriteEventStreamAsync(ReadOnlyMemory<byte> bytes, McpGuardFeature feature)
    {
        var text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes.Span);
        var changed = false;
        if (text.Length > 0 && text[0] == '\uFEFF')
        {
            // A byte order mark before the first line: SSE readers drop it, and so does the proxy (else the first line
            // would not read as a data field here, and the answer in it would pass unfiltered).
            text = text[1..];
            changed = true;
        }

        var lines = text.Split(["\r\n", "\r", "\n"], StringSplitOptions.None);
        var output = new StringBuilder(text.Length);
        var eventLines = new List<string>();
        var unterminated = lines[^1].Length > 0;

        // The last element is what follows the last line break: an unterminated line (kept as it is) or nothing.
        for (var i = 0; i < lines.Length - 1; i++)
        {
            if (lines[i].Length > 0)
            {
                eventLines.Add(lines[i]);
                continue;
            }

            if (eventLines.Count > 0)
            {
                var data = EventData(eventLines);
                var rewritten = string.IsNullOrEmpty(data) ? null : await RewriteMessageAsync(Encoding.UTF8.GetBytes(data), feature, required: false);
                if (rewritten is not null)
                {
                    changed = true;
                    AppendLines(output, eventLines.Where(l => !IsData(l)));
                    output.Append("data: ").Append(Encoding.UTF8.GetString(rewritten)).Append('\n');
                }
                else
                {
                    AppendLines(output, eventLines);
                }

                eventLines.Clear();
            }

            output.Append('\n');
        }

        // What follows the last empty line is an event that never ended: a client drops it at the end of the stream (the
        // SSE specification), and so does the proxy, so that no lenient reader can find an unfiltered list in it.
        changed |= unterminated || eventLines.Count > 0;
        return changed ? Encoding.UTF8.GetBytes(output.ToString()) : null;
    }

    internal static bool IsData(string line) => line == "data" || line.StartsWith("data:", StringComparison.Ordinal);

    /// <summary>The event's data (its <c>data</c> lines joined by line feeds), or null when it has none.</summary>
    internal static string? EventData(List<string> lines)
    {
        StringBuilder? data = null;
        foreach (var line in lines)
        {
            if (!IsData(line))
            {
                continue;
            }

            var value = line.Length <= 5 ? string.Empty : line[5] == ' ' ? line[6..] : line[5..];
            data = data is null ? new StringBuilder(value) : data.Append('\n').Append(value);
        }

        return data?.ToString();
    }

    /// <summary>Whether the message is the answer (a <c>result</c> or an <c>error</c>) to the request of <paramref name="feature"/>.</summary>
    internal static bool IsAnswer(JsonObject message, McpGuardFeature feature) =>
        message.TryGetPropertyValue("id", out var id) && IdOf(id) is { } found && found == feature.Envelope!.Id
        && (message.ContainsKey("result") || message.ContainsKey("error"));

    private static JsonRpcId? IdOf(JsonNode? id) => id switch
    {
        JsonValue value when value.TryGetValue<string>(out var text) => new JsonRpcId(text),
        JsonValue value when value.TryGetValue<long>(out var number) => new JsonRpcId(number),
        _ => null,
    };

    /// <summary>
    /// The message rewritten when it is the answer with the list; null when it is a message the list cannot be in
    /// (a notification or a request of the server's) or an error answer, passed on as they are. Whatever else throws: a
    /// message that is not a JSON object read the one way every reader reads it (no duplicate members), or an answer to
    /// an id that is not this request's (a JavaScript reader may take <c>1.0</c> for <c>1</c>).
    /// </summary>
    private async ValueTask<byte[]?> RewriteMessageAsync(ReadOnlyMemory<byte> json, McpGuardFeature feature, bool required)
    {
        var node = JsonNode.Parse(json.Span, documentOptions: ReadOptions);
        if (node is not JsonObject message)
        {
            throw new FormatException("a message that is not a JSON object");
        }

        var isAnswer = message.ContainsKey("result") || message.ContainsKey("error");
        if (!isAnswer && !required && message.ContainsKey("method"))
        {
            return null;
        }

        if (!isAnswer || !IsAnswer(message, feature))
        {
            throw new FormatException("the body is not the answer to the request");
        }

        if (!message.TryGetPropertyValue("result", out var result))
        {
            return null;
        }

        var (itemsName, itemMethod) = List(feature.Envelope!.Method!)!.Value;
        if (result is not JsonObject resultObject || !resultObject.TryGetPropertyValue(itemsName, out var itemsNode) || itemsNode is not JsonArray items)
        {
            throw new FormatException($"the result has no {itemsName} array");
        }

        var state = feature.State;
        if (itemMethod == McpMethods.ToolsCall)
        {
            resultObject[itemsName] = await FilterToolsAsync(items, feature);
        }
        else
        {
            foreach (var item in items)
            {
                // Items are only priced here, never left out: one that is not an object stays as the upstream sent it.
                if (item is JsonObject itemObject)
                {
                    var name = itemObject.TryGetPropertyValue("name", out var nameNode) && nameNode is JsonValue nameValue && nameValue.TryGetValue<string>(out var text) ? text : null;
                    Tag(itemObject, DiscoveryMeta.PriceMeta, DiscoveryMeta.Price(state.Credits, itemMethod, name));
                }
            }
        }

        Tag(resultObject, DiscoveryMeta.AccountMeta, await DiscoveryMeta.AccountAsync(ledger, state, feature.Caller, clock));
        return JsonSerializer.SerializeToUtf8Bytes(message);
    }

    /// <summary>The tools the caller may see, paused and archived ones marked or left out, each priced one with its price.</summary>
    private async ValueTask<JsonArray> FilterToolsAsync(JsonArray tools, McpGuardFeature feature)
    {
        var state = feature.State;
        var auth = state.Auth;
        var upstream = state.Options.Upstream;
        var filtered = new JsonArray();
        foreach (var tool in tools.ToArray())
        {
            if (tool is not JsonObject toolObject || !toolObject.TryGetPropertyValue("name", out var nameNode) || nameNode is not JsonValue nameValue
                || !nameValue.TryGetValue<string>(out var name))
            {
                // A tool without a name cannot be called, nor told apart for its scopes: it is not shown.
                continue;
            }

            if (!auth.ListsTool(name, feature.Caller))
            {
                continue;
            }

            var status = await ToolStatusGate.StatusAsync(statuses, state, name);
            var listing = status switch
            {
                McpGuardToolStatus.Paused => upstream.PausedTools,
                McpGuardToolStatus.Archived => upstream.ArchivedTools,
                _ => (McpGuardToolListing?)null,
            };
            if (listing == McpGuardToolListing.Hide)
            {
                continue;
            }

            tools.Remove(toolObject);
            if (listing == McpGuardToolListing.Mark)
            {
                Tag(toolObject, StatusMeta, McpGuard.Tools.ToolStatusGate.Name(status));
            }

            Tag(toolObject, DiscoveryMeta.PriceMeta, DiscoveryMeta.Price(state.Credits, McpMethods.ToolsCall, name));
            filtered.Add(toolObject);
        }

        return filtered;
    }

    /// <summary>Puts <paramref name="value"/> in the object's <c>_meta</c> under <paramref name="key"/>, or takes the upstream's own out (<see cref="DiscoveryMeta.Tag"/>); a <c>_meta</c> that is not an object is replaced.</summary>
    private static void Tag(JsonObject target, string key, JsonNode? value) =>
        DiscoveryMeta.Tag(key, value, () => target["_meta"] as JsonObject, meta => target["_meta"] = meta);
}
