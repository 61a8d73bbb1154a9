using System.Collections.Concurrent;
using System.Collections.Frozen;
using System.Net;
using McpGuard.Auth;
using McpGuard.Protocol;
using McpGuard.RateLimiting;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace McpGuard.Tests.RateLimiting;

/// <summary>
/// The gate driven directly, with a provider that records what it is asked for: the partition names a limiter
/// provider sees (a distributed provider keys its counters by them), and that each partition's limiter is made once.
/// </summary>
public sealed class RateLimitPartitionTests
{
    private static readonly DateTimeOffset Noon = new(2026, 11, 21, 12, 0, 0, TimeSpan.Zero);

    [Theory]
    [InlineData(nameof(McpGuardRateLimitPartition.Account), "account:alice")]
    [InlineData(nameof(McpGuardRateLimitPartition.Key), "key:k1")]
    public async Task The_provider_sees_the_partition_and_for_per_tool_windows_the_tool(string partitionByName, string partition)
    {
        var partitionBy = Enum.Parse<McpGuardRateLimitPartition>(partitionByName);
        var provider = new RecordingProvider(new FakeTimeProvider(Noon));
        using var gate = new RateLimitGate(provider, new FakeTimeProvider(Noon), NullLogger<RateLimitGate>.Instance);
        var state = State(partitionBy);

        for (var i = 0; i < 3; i++)
        {
            Assert.Null(await gate.CheckAsync(new DefaultHttpContext(), Feature(state, "add", Caller())));
            Assert.Null(await gate.CheckAsync(new DefaultHttpContext(), Feature(state, "echo", Caller())));
        }

        // One limiter per (partition, window), each made on first use and kept: add's window is per tool, the default's is not.
        Assert.Equal(
            [(partition, "default-1d"), (partition, "default-1m"), ($"{partition}|tool:add", "add-1m")],
            provider.Created.Order());
    }

    [Fact]
    public async Task Anonymous_callers_are_partitioned_by_remote_address()
    {
        var provider = new RecordingProvider(new FakeTimeProvider(Noon));
        using var gate = new RateLimitGate(provider, new FakeTimeProvider(Noon), NullLogger<RateLimitGate>.Instance);
        var context = new DefaultHttpContext();
        context.Connection.RemoteIpAddress = IPAddress.Parse("10.0.0.7");

        Assert.Null(await gate.CheckAsync(context, Feature(State(McpGuardRateLimitPartition.Account), "echo", caller: null)));

        Assert.Equal([("ip:10.0.0.7", "default-1d"), ("ip:10.0.0.7", "default-1m")], provider.Created.Order());
    }

    [Fact]
    public async Task A_call_that_loses_the_last_permit_between_the_read_and_the_spend_is_refused_and_the_windows_are_read_again()
    {
        // add-1m reports one permit when first read, then refuses the spend (another call took the permit) and reads 0 after.
        var clock = new FakeTimeProvider(Noon);
        var provider = new RacedProvider(clock, raced: "add-1m");
        using var gate = new RateLimitGate(provider, clock, NullLogger<RateLimitGate>.Instance);
        var context = new DefaultHttpContext();

        var error = await gate.CheckAsync(context, Feature(State(McpGuardRateLimitPartition.Account), "add", Caller()));

        Assert.NotNull(error);
        Assert.Equal(McpGuardReasons.RateLimited, error.Descriptor.Reason);
        Assert.Equal("Rate limit exceeded: retry after 7 s.", error.Detail);
        Assert.Equal(7, error.RetryAfterSeconds);
        Assert.Equal([new KeyValuePair<string, object?>("limit", "add-1m")], error.Data);
        // The chain asks add-1m first, so the default windows spent nothing; every window is read again for the header.
        Assert.Equal("\"add-1m\";r=0;t=60, \"default-1m\";r=100;t=60, \"default-1d\";r=1000;t=43200", context.Response.Headers["RateLimit"].ToString());
        Assert.Equal("\"add-1m\";q=10;w=60, \"default-1m\";q=100;w=60, \"default-1d\";q=1000;w=86400", context.Response.Headers["RateLimit-Policy"].ToString());
    }

    [Fact]
    public void A_partition_key_reads_as_the_partition_and_its_tool()
    {
        Assert.Equal("account:alice", new RateLimitPartitionKey("account:", "alice", null).ToString());
        Assert.Equal("account:alice|tool:add", new RateLimitPartitionKey("account:", "alice", "add").ToString());
        Assert.Equal("account:alice", new RateLimitSubject("account:", "alice", "add").Partition);
        Assert.NotEqual(new RateLimitPartitionKey("account:", "alice", "add"), new RateLimitPartitionKey("account:", "alice", null));
        Assert.Equal(new RateLimitPartitionKey("account:", "alice", "add"), new RateLimitPartitionKey("account:", new string("alice".AsSpan()), new string("add".AsSpan())));
    }

    private static McpGuardState State(McpGuardRateLimitPartition partitionBy)
    {
        var options = new McpGuardOptions();
        options.RateLimits.PartitionBy = partitionBy;
        options.RateLimits.DefaultPolicy = "default";
        var @default = new McpGuardRateLimitPolicy();
        @default.Windows.Add(new McpGuardRateLimitWindowOptions { Permits = 100, Window = TimeSpan.FromMinutes(1) });
        @default.Windows.Add(new McpGuardRateLimitWindowOptions { Permits = 1000, Window = TimeSpan.FromDays(1) });
        var add = new McpGuardRateLimitPolicy { PerTool = true };
        add.Windows.Add(new McpGuardRateLimitWindowOptions { Permits = 10, Window = TimeSpan.FromMinutes(1) });
        options.RateLimits.Policies["default"] = @default;
        options.RateLimits.Policies["add"] = add;
        options.Tools["add"] = new McpGuardToolPolicy { RateLimitPolicy = "add" };
        return new McpGuardState(options);
    }

    private static McpGuardCaller Caller() =>
        new("alice", "k1", FrozenSet<string>.Empty, McpGuardCredentialKind.ApiKey);

    private static McpGuardFeature Feature(McpGuardState state, string tool, McpGuardCaller? caller)
    {
        var feature = new McpGuardFeature("req_test", state);
        feature.RecordEnvelope(new McpEnvelope { Kind = McpMessageKind.Request, Id = new JsonRpcId(1), Method = McpMethods.ToolsCall, Name = tool });
        if (caller is not null)
        {
            feature.RecordCaller(caller);
        }

        return feature;
    }

    private sealed class RecordingProvider(TimeProvider clock) : IMcpGuardRateLimiterProvider
    {
        private readonly ConcurrentQueue<(string Partition, string Window)> _created = new();

        public IEnumerable<(string Partition, string Window)> Created => _created;

        public System.Threading.RateLimiting.RateLimiter Create(string partition, McpGuardRateLimiterWindow window)
        {
            _created.Enqueue((partition, window.Name));
            return new ClockedRateLimiter(window, clock);
        }
    }

    private sealed class RacedProvider(TimeProvider clock, string raced) : IMcpGuardRateLimiterProvider
    {
        public System.Threading.RateLimiting.RateLimiter Create(string partition, McpGuardRateLimiterWindow window) =>
            window.Name == raced ? new RacedLimiter() : new ClockedRateLimiter(window, clock);
    }

    /// <summary>One permit on the first read; every spend refused (retry after 7 s); none left on later reads.</summary>
    private sealed class RacedLimiter : System.Threading.RateLimiting.RateLimiter
    {
        private int _reads;

        public override TimeSpan? IdleDuration => null;

        public override System.Threading.RateLimiting.RateLimiterStatistics GetStatistics() =>
            new() { CurrentAvailablePermits = Interlocked.Increment(ref _reads) == 1 ? 1 : 0 };

        protected override System.Threading.RateLimiting.RateLimitLease AttemptAcquireCore(int permitCount) => new Refused();

        protected override ValueTask<System.Threading.RateLimiting.RateLimitLease> AcquireAsyncCore(int permitCount, CancellationToken cancellationToken) =>
            ValueTask.FromResult<System.Threading.RateLimiting.RateLimitLease>(new Refused());
    }

    private sealed class Refused : System.Threading.RateLimiting.RateLimitLease
    {
        public override bool IsAcquired => false;

        public override IEnumerable<string> MetadataNames => [System.Threading.RateLimiting.MetadataName.RetryAfter.Name];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = metadataName == System.Threading.RateLimiting.MetadataName.RetryAfter.Name ? TimeSpan.FromSeconds(7) : null;
            return metadata is not null;
        }
    }
}
