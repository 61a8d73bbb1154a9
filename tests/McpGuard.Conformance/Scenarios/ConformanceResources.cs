using System.ComponentModel;
using System.Text.Json;
using System.Text.Json.Serialization;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Conformance.Scenarios;

/// <summary>Resources for <c>resources-list</c>, <c>resources-read-*</c>, <c>resources-templates-read</c> and the subscription scenarios.</summary>
[McpServerResourceType]
internal sealed class ConformanceResources
{
    [McpServerResource(UriTemplate = "test://static-text", Name = "Static Text Resource", MimeType = "text/plain"), Description("Fixed text.")]
    public static string StaticText() => "This is the content of the static text resource.";

    [McpServerResource(UriTemplate = "test://static-binary", Name = "Static Binary Resource", MimeType = "image/png"), Description("A fixed PNG.")]
    public static BlobResourceContents StaticBinary() => new() { Uri = "test://static-binary", MimeType = "image/png", Blob = Samples.Utf8(Samples.PngBase64) };

    [McpServerResource(UriTemplate = "test://template/{id}/data", Name = "Resource Template", MimeType = "application/json"), Description("JSON built from the id in the URI.")]
    public static TextResourceContents Template(string id) => new()
    {
        Uri = $"test://template/{id}/data",
        MimeType = "application/json",
        Text = JsonSerializer.Serialize(new TemplateData(id, TemplateTest: true, $"Data for ID: {id}"), ConformanceJson.Default.TemplateData),
    };

    [McpServerResource(UriTemplate = "test://watched-resource", Name = "Watched Resource", MimeType = "text/plain"), Description("A resource clients subscribe to.")]
    public static string Watched() => "Watched resource content";
}

internal sealed record TemplateData(string Id, bool TemplateTest, string Data);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(TemplateData))]
internal sealed partial class ConformanceJson : JsonSerializerContext;
