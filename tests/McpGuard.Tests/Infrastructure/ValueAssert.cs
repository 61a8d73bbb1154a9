using System.Text.Json;

namespace McpGuard.Tests.Infrastructure;

/// <summary>
/// Value equality for McpGuard's public data classes (ledger rows, accounts, charge results, keys), which are plain classes
/// rather than records to keep the public API small: two values are equal when every public property is.
/// </summary>
public static class ValueAssert
{
    private static readonly JsonSerializerOptions Options = new() { WriteIndented = false };

    public static void Equal<T>(T expected, T actual)
    {
        Assert.Equal(JsonSerializer.Serialize(expected, Options), JsonSerializer.Serialize(actual, Options));
    }
}
