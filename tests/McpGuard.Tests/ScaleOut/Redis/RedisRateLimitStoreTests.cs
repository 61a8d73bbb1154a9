using System.Diagnostics;
using McpGuard.Redis;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using StackExchange.Redis;

namespace McpGuard.Tests.ScaleOut.Redis;

/// <summary>The store on its own: its keys (text, slot, expiry), keys built from hostile text, NOSCRIPT, and its health check.</summary>
[Collection(RedisTests.Name)]
public sealed class RedisRateLimitStoreTests(RedisServer redis)
{
    private static readonly McpGuardRateLimiterWindow Fixed = new("default", "default-1m", McpGuardRateLimitAlgorithm.FixedWindow, 3, TimeSpan.FromMinutes(1), 6);
    private static readonly McpGuardRateLimiterWindow Sliding = new("add", "add-10s", McpGuardRateLimitAlgorithm.SlidingWindow, 5, TimeSpan.FromSeconds(10), 5, perTool: true);
    private static readonly McpGuardRateLimiterWindow Bucket = new("burst", "burst-2s", McpGuardRateLimitAlgorithm.TokenBucket, 4, TimeSpan.FromSeconds(2), 6, perTool: true);
    private static readonly McpGuardRateLimiterWindow[] Chain = [Bucket, Sliding, Fixed];

    [Fact]
    public async Task One_call_writes_one_key_per_window_in_one_slot_each_expiring_within_its_window()
    {
        var prefix = $"keys-{Guid.NewGuid():N}:";
        await using var store = new RedisRateLimitStore(redis.Configuration, prefix, TimeSpan.FromSeconds(5));
        var request = new McpGuardRateLimitRequest("account:alice", "add", Chain, spend: true);

        var result = await store.AcquireAsync(request, CancellationToken.None);

        Assert.True(result.Acquired);
        Assert.Equal([3L, 4L, 2L], result.Windows.Select(w => w.Available));
        Assert.Equal(
            [$"{prefix}{{account:alice}}:burst:burst-2s:tool:add", $"{prefix}{{account:alice}}:add:add-10s:tool:add", $"{prefix}{{account:alice}}:default:default-1m"],
            store.KeysOf(request));
        var database = await redis.DatabaseAsync();
        var slots = new HashSet<int>();
        foreach (var (key, window) in store.KeysOf(request).Zip(Chain))
        {
            var ttl = await database.KeyTimeToLiveAsync(key);
            Assert.True(ttl is { } left && left > TimeSpan.Zero && left <= window.Window, $"{key}: TTL {ttl} must be within its window {window.Window}");
            slots.Add(database.Multiplexer.HashSlot(key));
        }

        Assert.Equal([database.Multiplexer.HashSlot("{account:alice}")], slots);
    }

    [Fact]
    public async Task A_read_spends_nothing_and_writes_no_key()
    {
        var prefix = $"read-{Guid.NewGuid():N}:";
        await using var store = new RedisRateLimitStore(redis.Configuration, prefix, TimeSpan.FromSeconds(5));
        var request = new McpGuardRateLimitRequest("account:alice", "add", Chain, spend: false);

        var first = await store.AcquireAsync(request, CancellationToken.None);
        var second = await store.AcquireAsync(request, CancellationToken.None);

        Assert.True(first.Acquired && second.Acquired);
        Assert.Equal([4L, 5L, 3L], second.Windows.Select(w => w.Available));
        Assert.Equal([TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero], second.Windows.Select(w => w.RetryAfter));
        var database = await redis.DatabaseAsync();
        foreach (var key in store.KeysOf(request))
        {
            Assert.False(await database.KeyExistsAsync(key), key);
        }
    }

    [Fact]
    public async Task A_call_refused_by_one_window_spends_nothing_in_the_others()
    {
        await using var store = new RedisRateLimitStore(redis.Configuration, $"refuse-{Guid.NewGuid():N}:", TimeSpan.FromSeconds(5));
        var tight = new McpGuardRateLimiterWindow("tight", "tight-1m", McpGuardRateLimitAlgorithm.FixedWindow, 1, TimeSpan.FromMinutes(1), 6);
        var wide = new McpGuardRateLimiterWindow("wide", "wide-1m", McpGuardRateLimitAlgorithm.FixedWindow, 10, TimeSpan.FromMinutes(1), 6);
        var chain = new[] { tight, wide };
        await redis.WaitForRoomInMinuteAsync(TimeSpan.FromSeconds(5));

        var passed = await store.AcquireAsync(new McpGuardRateLimitRequest("account:alice", null, chain, spend: true), CancellationToken.None);
        var refused = await store.AcquireAsync(new McpGuardRateLimitRequest("account:alice", null, chain, spend: true), CancellationToken.None);
        var again = await store.AcquireAsync(new McpGuardRateLimitRequest("account:alice", null, chain, spend: true), CancellationToken.None);

        Assert.True(passed.Acquired);
        Assert.False(refused.Acquired);
        Assert.False(again.Acquired);
        Assert.Equal([0L, 9L], again.Windows.Select(w => w.Available));
        Assert.True(again.Windows[0].RetryAfter > TimeSpan.Zero && again.Windows[0].RetryAfter <= TimeSpan.FromMinutes(1));
        Assert.Equal(TimeSpan.Zero, again.Windows[1].RetryAfter);
        Assert.Equal(again.Windows[0].RetryAfter, again.Windows[0].Reset);
    }

    [Fact]
    public async Task A_sliding_window_keeps_one_field_per_segment_still_in_the_window_and_deletes_those_that_slid_out()
    {
        await using var store = new RedisRateLimitStore(redis.Configuration, $"slide-{Guid.NewGuid():N}:", TimeSpan.FromSeconds(5));
        McpGuardRateLimiterWindow[] hour = [new("hourly", "hourly-1h", McpGuardRateLimitAlgorithm.SlidingWindow, 1000, TimeSpan.FromHours(1), 3600)];
        var request = new McpGuardRateLimitRequest("account:alice", null, hour, spend: true);
        var key = Assert.Single(store.KeysOf(request));
        var database = await redis.DatabaseAsync();
        const long start = 1_800_000_000_000_000; // µs since the epoch, on a segment boundary

        for (var second = 0; second < 10; second++)
        {
            await store.AcquireAsync(request, start + (second * 1_000_000L), CancellationToken.None);
        }

        Assert.Equal(11, await database.HashLengthAsync(key)); // n and ten segments
        var later = await store.AcquireAsync(request, start + 3_605_000_000L, CancellationToken.None);

        // An hour and 5 s on: segments 0 to 5 slid out and were deleted, 6 to 9 and the new one remain.
        Assert.Equal(1000 - 5, later.Windows[0].Available);
        Assert.Equal(6, await database.HashLengthAsync(key));
    }

    [Theory]
    [InlineData("account:a}b", "to}ol", "account:a%7Db", "to%7Dol")]
    [InlineData("account:{x}", "{t}", "account:%7Bx%7D", "%7Bt%7D")]
    [InlineData("account:50%", "%7B", "account:50%25", "%257B")]
    [InlineData("ip:::1", "", "ip:::1", "%")]
    public async Task Braces_and_percent_signs_from_clients_are_escaped_so_the_hash_tag_is_the_whole_partition(string partition, string tool, string escapedPartition, string escapedTool)
    {
        var prefix = $"esc-{Guid.NewGuid():N}:";
        await using var store = new RedisRateLimitStore(redis.Configuration, prefix, TimeSpan.FromSeconds(5));
        var request = new McpGuardRateLimitRequest(partition, tool, Chain, spend: true);

        await store.AcquireAsync(request, CancellationToken.None);

        Assert.Equal(
            [$"{prefix}{{{escapedPartition}}}:burst:burst-2s:tool:{escapedTool}", $"{prefix}{{{escapedPartition}}}:add:add-10s:tool:{escapedTool}", $"{prefix}{{{escapedPartition}}}:default:default-1m"],
            store.KeysOf(request));
        var database = await redis.DatabaseAsync();
        foreach (var key in store.KeysOf(request))
        {
            Assert.Equal(database.Multiplexer.HashSlot("{" + escapedPartition + "}"), database.Multiplexer.HashSlot(key));
            Assert.True(await database.KeyExistsAsync(key), key);
        }
    }

    [Fact]
    public async Task Text_crafted_with_braces_cannot_reach_another_callers_key()
    {
        var prefix = $"craft-{Guid.NewGuid():N}:";
        await using var store = new RedisRateLimitStore(redis.Configuration, prefix, TimeSpan.FromSeconds(5));
        McpGuardRateLimiterWindow[] one = [new("add", "add-1m", McpGuardRateLimitAlgorithm.FixedWindow, 1, TimeSpan.FromMinutes(1), 6, perTool: true)];
        await redis.WaitForRoomInMinuteAsync(TimeSpan.FromSeconds(5));

        // Unescaped, both would be "{account:bob}:add:add-1m:tool:x}:add:add-1m:tool:y": one key, one permit between them.
        var first = new McpGuardRateLimitRequest("account:bob", "x}:add:add-1m:tool:y", one, spend: true);
        var second = new McpGuardRateLimitRequest("account:bob}:add:add-1m:tool:x", "y", one, spend: true);
        var firstResult = await store.AcquireAsync(first, CancellationToken.None);
        var secondResult = await store.AcquireAsync(second, CancellationToken.None);

        Assert.True(firstResult.Acquired);
        Assert.True(secondResult.Acquired);
        Assert.Equal($"{prefix}{{account:bob}}:add:add-1m:tool:x%7D:add:add-1m:tool:y", Assert.Single(store.KeysOf(first)));
        Assert.Equal($"{prefix}{{account:bob%7D:add:add-1m:tool:x}}:add:add-1m:tool:y", Assert.Single(store.KeysOf(second)));
    }

    [Fact]
    public async Task Each_call_is_one_EVALSHA_and_after_SCRIPT_FLUSH_as_after_a_Redis_restart_the_next_call_loads_the_script_again()
    {
        await using var store = new RedisRateLimitStore(redis.Configuration, $"flush-{Guid.NewGuid():N}:", TimeSpan.FromSeconds(5));
        var request = new McpGuardRateLimitRequest("account:alice", "add", Chain, spend: true);
        await store.AcquireAsync(request, CancellationToken.None);
        var database = await redis.DatabaseAsync();
        Assert.True(await ScriptLoadedAsync(database));

        var before = await CommandCallsAsync(database);
        await store.AcquireAsync(request, CancellationToken.None);
        var after = await CommandCallsAsync(database);
        // One round trip: EVALSHA alone (the script's own HMGET/HGETALL/HSET/PEXPIRE/TIME run inside it).
        Assert.Equal(before.GetValueOrDefault("evalsha") + 1, after.GetValueOrDefault("evalsha"));
        Assert.Equal(before.GetValueOrDefault("eval"), after.GetValueOrDefault("eval"));

        await database.ExecuteAsync("SCRIPT", "FLUSH");
        Assert.False(await ScriptLoadedAsync(database));
        var reloaded = await store.AcquireAsync(request, CancellationToken.None);

        Assert.True(reloaded.Acquired);
        Assert.Equal([1L, 2L, 0L], reloaded.Windows.Select(w => w.Available));
        Assert.True(await ScriptLoadedAsync(database));
    }

    private static async Task<bool> ScriptLoadedAsync(IDatabase database) =>
        (long)((RedisResult[])(await database.ExecuteAsync("SCRIPT", "EXISTS", Convert.ToHexStringLower(RedisRateLimitScript.Hash)))!)[0] == 1;

    /// <summary>Calls per command so far, from INFO commandstats (<c>cmdstat_evalsha:calls=3,…</c>).</summary>
    private static async Task<Dictionary<string, long>> CommandCallsAsync(IDatabase database)
    {
        var info = (string)(await database.ExecuteAsync("INFO", "commandstats"))!;
        return info.Split('\n', StringSplitOptions.TrimEntries)
            .Where(line => line.StartsWith("cmdstat_", StringComparison.Ordinal))
            .ToDictionary(
                line => line["cmdstat_".Length..line.IndexOf(':', StringComparison.Ordinal)],
                line => long.Parse(line.Split(':')[1].Split(',')[0]["calls=".Length..], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task The_health_check_PINGs_Redis_and_reports_a_Redis_that_does_not_answer_within_the_store_timeout()
    {
        await using var up = new RedisRateLimitStore(redis.Configuration, "health:", TimeSpan.FromSeconds(5));
        var healthy = await up.CheckHealthAsync(new HealthCheckContext());
        Assert.Equal(HealthStatus.Healthy, healthy.Status);
        Assert.StartsWith("Redis answered PING in ", healthy.Description);

        // A port nothing listens on: start-up never fails, calls and the health check do, within the timeout.
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        await using var down = new RedisRateLimitStore($"127.0.0.1:{port}", "health:", TimeSpan.FromMilliseconds(300));
        var watch = Stopwatch.StartNew();
        var unhealthy = await down.CheckHealthAsync(new HealthCheckContext());
        Assert.Equal(HealthStatus.Unhealthy, unhealthy.Status);
        Assert.Equal("Redis did not answer PING within McpGuard:StoreTimeout.", unhealthy.Description);
        await Assert.ThrowsAnyAsync<Exception>(async () =>
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
            await down.AcquireAsync(new McpGuardRateLimitRequest("account:alice", null, Chain, spend: true), timeout.Token);
        });
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}");
    }
}
