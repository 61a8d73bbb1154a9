namespace McpGuard.Tests.Infrastructure;

/// <summary>Writing an appsettings-style file a running host watches (<c>reloadOnChange</c>).</summary>
public static class ConfigFile
{
    /// <summary>How long a test waits for a file watcher to report a change and the host to log the reload.</summary>
    public static readonly TimeSpan ReloadBound = TimeSpan.FromSeconds(5);

    /// <summary>Replaces the file in one rename (staged beside it), so a reload never reads it half-written.</summary>
    public static async Task ReplaceAsync(string path, string json)
    {
        var staging = $"{path}.{Guid.NewGuid():N}.tmp";
        await File.WriteAllTextAsync(staging, json);
        File.Move(staging, path, overwrite: true);
    }
}
