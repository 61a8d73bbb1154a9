using System.ComponentModel;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Conformance.Scenarios;

/// <summary>Prompts for <c>prompts-list</c> and <c>prompts-get-*</c>.</summary>
[McpServerPromptType]
internal sealed class ConformancePrompts
{
    [McpServerPrompt(Name = "test_simple_prompt"), Description("A prompt with no arguments.")]
    public static string Simple() => "This is a simple prompt without arguments";

    [McpServerPrompt(Name = "test_prompt_with_arguments"), Description("A prompt with two required arguments.")]
    public static string WithArguments([Description("First test argument")] string arg1, [Description("Second test argument")] string arg2) =>
        $"Prompt with arguments: arg1={arg1}, arg2={arg2}";

    [McpServerPrompt(Name = "test_prompt_with_embedded_resource"), Description("A prompt that embeds the resource it is given.")]
    public static IEnumerable<PromptMessage> WithEmbeddedResource([Description("URI of the resource to embed")] string resourceUri) =>
    [
        new() { Role = Role.User, Content = new EmbeddedResourceBlock { Resource = new TextResourceContents { Uri = resourceUri, MimeType = "text/plain", Text = "Embedded resource content for testing." } } },
        new() { Role = Role.User, Content = new TextContentBlock { Text = "Please process the embedded resource above." } },
    ];

    [McpServerPrompt(Name = "test_prompt_with_image"), Description("A prompt that carries an image.")]
    public static IEnumerable<PromptMessage> WithImage() =>
    [
        new() { Role = Role.User, Content = new ImageContentBlock { MimeType = "image/png", Data = Samples.Utf8(Samples.PngBase64) } },
        new() { Role = Role.User, Content = new TextContentBlock { Text = "Please analyze the image above." } },
    ];
}
