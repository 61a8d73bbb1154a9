using System.Globalization;

namespace McpGuard.Storage;

/// <summary>How McpGuard's SQLite tables write times: UTC, to the tick, sortable as text.</summary>
internal static class SqliteText
{
    public const string TimestampFormat = "yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'";

    public static string Format(DateTimeOffset time) => time.UtcDateTime.ToString(TimestampFormat, CultureInfo.InvariantCulture);
}
