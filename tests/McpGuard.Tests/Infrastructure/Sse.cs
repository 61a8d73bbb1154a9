using System.Text.Json;

namespace McpGuard.Tests.Infrastructure;

/// <summary>Reads the JSON-RPC messages out of a Streamable HTTP response (SSE or plain JSON).</summary>
public static class Sse
{
    /// <summary>Every message of an SSE response (events without data, such as priming events, are skipped).</summary>
    public static async Task<List<JsonElement>> ReadMessagesAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        var messages = new List<JsonElement>();
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal) && line.Length > "data: ".Length)
            {
                using var document = JsonDocument.Parse(line["data: ".Length..]);
                messages.Add(document.RootElement.Clone());
            }
        }

        return messages;
    }

    public static async Task<JsonElement> ReadSingleMessageAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        if (response.Content.Headers.ContentType?.MediaType == "text/event-stream")
        {
            var data = text.Split('\n').Where(l => l.StartsWith("data: ", StringComparison.Ordinal)).Select(l => l["data: ".Length..]).ToList();
            Assert.Single(data);
            text = data[0];
        }

        using var document = JsonDocument.Parse(text);
        return document.RootElement.Clone();
    }
}
