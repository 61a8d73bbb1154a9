using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.Docs;

/// <summary>
/// The sample's clock while a page's transcripts run: a <see cref="FakeTimeProvider"/> that stands still at second 36
/// of a minute (the first such instant from now, so tokens the sample's <c>token</c> command mints on the real clock
/// are already valid), so rate windows, <c>Retry-After</c> and every timestamp are the same on every run. Nothing
/// advances it, so its timers run on real time instead, and never later than a second: a 30-second upstream timeout
/// is shown as written and takes a second to run.
/// </summary>
internal sealed class DocsClock() : FakeTimeProvider(NextSecond36(TimeProvider.System.GetUtcNow()))
{
    private static readonly TimeSpan LongestWait = TimeSpan.FromSeconds(1);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
        new ShortTimer(TimeProvider.System.CreateTimer(callback, state, Shorten(dueTime), Shorten(period)));

    private static DateTimeOffset NextSecond36(DateTimeOffset now)
    {
        var instant = new DateTimeOffset(now.Year, now.Month, now.Day, now.Hour, now.Minute, 36, TimeSpan.Zero);
        return instant >= now ? instant : instant.AddMinutes(1);
    }

    private static TimeSpan Shorten(TimeSpan wait) =>
        wait == Timeout.InfiniteTimeSpan || wait <= LongestWait ? wait : LongestWait;

    private sealed class ShortTimer(ITimer inner) : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period) => inner.Change(Shorten(dueTime), Shorten(period));

        public void Dispose() => inner.Dispose();

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
