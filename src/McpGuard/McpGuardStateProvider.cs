using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace McpGuard;

/// <summary>
/// Holds the current <see cref="McpGuardState"/>. On a configuration reload it rebuilds and validates the
/// options; a bad reload is logged and the last good state stays in force.
/// </summary>
internal sealed partial class McpGuardStateProvider : IDisposable
{
    private readonly IOptionsFactory<McpGuardOptions> _factory;
    private readonly ILogger<McpGuardStateProvider> _logger;
    private readonly List<IDisposable> _registrations = [];
    private volatile McpGuardState _current;
    private CancellationTokenSource _reloaded = new();

    public McpGuardStateProvider(
        IOptions<McpGuardOptions> options,
        IOptionsFactory<McpGuardOptions> factory,
        IEnumerable<IOptionsChangeTokenSource<McpGuardOptions>> changeSources,
        ILogger<McpGuardStateProvider> logger)
    {
        _factory = factory;
        _logger = logger;
        _current = new McpGuardState(options.Value);
        foreach (var source in changeSources)
        {
            if (string.Equals(source.Name ?? Options.DefaultName, Options.DefaultName, StringComparison.Ordinal))
            {
                _registrations.Add(ChangeToken.OnChange(source.GetChangeToken, Reload));
            }
        }
    }

    public McpGuardState Current => _current;

    /// <summary>A token that fires when a good reload has replaced <see cref="Current"/> (options built from it are stale then).</summary>
    public IChangeToken GetReloadToken() => new CancellationChangeToken(_reloaded.Token);

    private void Reload()
    {
        McpGuardOptions options;
        try
        {
            options = _factory.Create(Options.DefaultName);
        }
        catch (OptionsValidationException ex)
        {
            Log.ReloadRejected(_logger, string.Join(" ", ex.Failures));
            return;
        }
        catch (InvalidOperationException ex)
        {
            // The binder reports a value it cannot convert (say, "Format": "Xml") this way.
            Log.ReloadRejected(_logger, ex.Message);
            return;
        }

        _current = new McpGuardState(options);
        Interlocked.Exchange(ref _reloaded, new CancellationTokenSource()).Cancel();
        Log.Reloaded(_logger);
    }

    public void Dispose()
    {
        foreach (var registration in _registrations)
        {
            registration.Dispose();
        }
    }

    private static partial class Log
    {
        [LoggerMessage(1001, LogLevel.Error, "McpGuard configuration reload rejected; the last good configuration stays in force. {Failures}", EventName = "ReloadRejected")]
        public static partial void ReloadRejected(ILogger logger, string failures);

        [LoggerMessage(1002, LogLevel.Information, "McpGuard configuration reloaded.", EventName = "Reloaded")]
        public static partial void Reloaded(ILogger logger);
    }
}
