using System.ComponentModel;
using System.Text.Json;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Conformance.Scenarios;

/// <summary>
/// Tools whose results the suite inspects: each content type, a mix, an error, and a raw JSON Schema 2020-12 input schema
/// (scenarios <c>tools-call-*</c>, <c>tools-call-error</c>, <c>json-schema-2020-12</c>).
/// </summary>
[McpServerToolType]
internal sealed class ContentTools
{
    [McpServerTool(Name = "test_simple_text"), Description("Answers with one text block.")]
    public static string SimpleText() => "This is a simple text response for testing.";

    [McpServerTool(Name = "test_image_content"), Description("Answers with one PNG image block.")]
    public static ImageContentBlock Image() => new() { MimeType = "image/png", Data = Samples.Utf8(Samples.PngBase64) };

    [McpServerTool(Name = "test_audio_content"), Description("Answers with one WAV audio block.")]
    public static AudioContentBlock Audio() => new() { MimeType = "audio/wav", Data = Samples.Utf8(Samples.WavBase64) };

    [McpServerTool(Name = "test_embedded_resource"), Description("Answers with one embedded text resource.")]
    public static EmbeddedResourceBlock Embedded() => new()
    {
        Resource = new TextResourceContents { Uri = "test://embedded-resource", MimeType = "text/plain", Text = "This is an embedded resource content." },
    };

    [McpServerTool(Name = "test_multiple_content_types"), Description("Answers with text, an image and an embedded resource.")]
    public static IEnumerable<ContentBlock> Mixed() =>
    [
        new TextContentBlock { Text = "Multiple content types test:" },
        new ImageContentBlock { MimeType = "image/png", Data = Samples.Utf8(Samples.PngBase64) },
        new EmbeddedResourceBlock
        {
            Resource = new TextResourceContents { Uri = "test://mixed-content-resource", MimeType = "application/json", Text = """{"test":"data","value":123}""" },
        },
    ];

    [McpServerTool(Name = "test_error_handling"), Description("Always fails: the result must be isError.")]
    public static string Fail() => throw new InvalidOperationException("This tool intentionally returns an error for testing");

    /// <summary>A tool whose input schema is given verbatim, with <c>$schema</c>, <c>$defs</c> and <c>$ref</c> the server must not rewrite.</summary>
    public static McpServerTool JsonSchema202012()
    {
        var tool = McpServerTool.Create(
            () => "JSON Schema 2020-12 tool executed successfully",
            new McpServerToolCreateOptions { Name = "json_schema_2020_12_tool", Description = "Declares its input with JSON Schema 2020-12 keywords." });
        tool.ProtocolTool.InputSchema = JsonElement.Parse("""
            {
              "$schema": "https://json-schema.org/draft/2020-12/schema",
              "type": "object",
              "$defs": {
                "address": { "type": "object", "properties": { "street": { "type": "string" }, "city": { "type": "string" } } }
              },
              "properties": { "name": { "type": "string" }, "address": { "$ref": "#/$defs/address" } },
              "additionalProperties": false
            }
            """);
        return tool;
    }
}
