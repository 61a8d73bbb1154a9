using System.Text.Json;

namespace McpGuard.Protocol;

/// <summary>Whether JSON string values decode to text, for the readers that must refuse what System.Text.Json cannot read.</summary>
internal static class JsonText
{
    /// <summary>Whether a string value decodes to text (the reader throws for invalid UTF-8 and unpaired surrogates).</summary>
    public static bool IsText(JsonElement value)
    {
        try
        {
            _ = value.GetString();
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
