using System.Text.Json;

namespace McpGuard.Tests.Infrastructure;

/// <summary>Reads the JSON-RPC messages out of a Streamable HTTP response (SSE or plain JSON).</summary>
public static class Sse
{
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
