using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace McpGuard.Tests.Infrastructure;

/// <summary>Captures every log entry a host writes, so tests can assert what was (and was not) logged.</summary>
public sealed class LogSink : ILoggerProvider
{
    private readonly ConcurrentQueue<LogEntry> _entries = new();

    public IReadOnlyList<LogEntry> Entries => [.. _entries];

    public ILogger CreateLogger(string categoryName) => new SinkLogger(this, categoryName);

    /// <summary>
    /// Polls for an entry with the event id (whose message contains <paramref name="containing"/>) for at most
    /// <paramref name="within"/>, failing the test when none comes: for what is logged asynchronously, such as reloads.
    /// </summary>
    public async Task<LogEntry> WaitForAsync(int eventId, TimeSpan within, string containing = "")
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (Entries.FirstOrDefault(e => e.EventId.Id == eventId && e.Message.Contains(containing, StringComparison.Ordinal)) is { } entry)
            {
                return entry;
            }

            Assert.True(clock.Elapsed < within, $"No log entry with event id {eventId} within {within.TotalSeconds} s.");
            await Task.Delay(25);
        }
    }

    public void Dispose()
    {
    }

    private sealed class SinkLogger(LogSink sink, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            sink._entries.Enqueue(new LogEntry(category, logLevel, eventId, formatter(state, exception), exception));
    }
}

public sealed record LogEntry(string Category, LogLevel Level, EventId EventId, string Message, Exception? Exception)
{
    /// <summary>The message and the full exception text, as a log file would hold them.</summary>
    public string FullText => Exception is null ? Message : $"{Message}\n{Exception}";
}
