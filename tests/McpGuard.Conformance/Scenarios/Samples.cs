namespace McpGuard.Conformance.Scenarios;

/// <summary>The tiny payloads the content scenarios expect back (any valid base64 passes; these are small and real).</summary>
internal static class Samples
{
    /// <summary>A 1×1 PNG, base64.</summary>
    public const string PngBase64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

    /// <summary>A WAV header with two bytes of silence, base64.</summary>
    public const string WavBase64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

    /// <summary>The SDK's content blocks carry base64 as UTF-8 bytes.</summary>
    public static ReadOnlyMemory<byte> Utf8(string base64) => System.Text.Encoding.UTF8.GetBytes(base64);
}
