using System.Text;
using CsCheck;
using McpGuard.Protocol;
using McpGuard.Tests.Infrastructure;
using McpGuard.Tests.Protocol.Differential;
using Xunit.Abstractions;

namespace McpGuard.Tests.Protocol;

/// <summary>
/// The guard and the C# SDK read the same body the same way. Generated bodies (valid MCP messages mutated in letter case,
/// duplicates, escapes, surrogates, Unicode, nesting, types, members and numbers) go to both McpGuard's envelope parser
/// and the SDK's own deserialization; whenever the SDK would dispatch method M for tool / prompt / resource X, the
/// guard must have seen exactly M, X and the same id, or refused the body.
/// </summary>
public sealed class OneReadingDifferentialTests(ITestOutputHelper output)
{
    /// <summary>Cases per run; <c>MCPGUARD_DIFFERENTIAL_ITER</c> raises it for a longer local run.</summary>
    internal static readonly long Iterations = long.TryParse(Environment.GetEnvironmentVariable("MCPGUARD_DIFFERENTIAL_ITER"), out var n) ? n : 100_000;

    [Fact]
    public void Whatever_the_SDK_dispatches_the_guard_saw_by_the_same_method_name_and_id_or_refused()
    {
        var seed = TestSeeds.Next();
        var tally = new DifferentialTally();

        JsonMutator.CaseGen.Sample(
            c => Agrees(Encoding.UTF8.GetBytes(JsonMutator.Build(c.Seed, c.Mutations)), tally),
            writeLine: output.WriteLine,
            seed: seed,
            iter: Iterations,
            print: c => $"seed body #{c.Seed}, mutations [{string.Join(", ", c.Mutations)}]:\n{JsonMutator.Build(c.Seed, c.Mutations)}");

        var summary = $"one-reading differential (in process): {Iterations:N0} bodies, each read by the guard and by the SDK's two params readers, seed {seed}; {tally}";
        output.WriteLine(summary);
        TestReport.Write(summary);

        // The generator must keep producing bodies of every kind, or the property proves little.
        Assert.Equal(2 * Iterations, tally.Total);
        Assert.True(tally.AgreedRequests > Iterations / 10, summary);
        Assert.True(tally.AgreedRoutedRequests > Iterations / 20, summary);
        Assert.True(tally.AgreedNotifications > Iterations / 100, summary);
        Assert.True(tally.GuardRefused > Iterations / 10, summary);
    }

    [Theory]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"premium_report"}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Name":"premium_report"}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","n\u0041me":"premium_report"}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"m":"\ud800"}}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":1},"arguments":{"b":2}}}""")]
    [InlineData("""{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_META":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}""")]
    public void The_bodies_from_the_issue_are_read_differently_by_the_SDK_and_refused_by_the_guard(string json)
    {
        var body = Encoding.UTF8.GetBytes(json);

        Assert.False(McpEnvelopeParser.TryParse(body, protocolVersionHeader: null, maxDepth: 64, out _, out var failure));
        Assert.Equal(400, McpGuard.Errors.McpGuardErrorCatalog.Default[failure.Reason].StatusCode);
    }

    [Fact]
    public void The_oracle_reads_as_each_of_the_SDKs_configurations_does()
    {
        // Holds the oracle to the SDK's real behaviour, so the property above is checked against the right readers:
        // MapMcp() binds exact names (a lone "Name" binds nothing; "Name" beside "name" is ignored)...
        Assert.Equal(SdkOutcome.Refused, SdkReading.Of("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"premium_report"}}"""u8.ToArray()).Outcome);
        Assert.Equal("echo", SdkReading.Of("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Name":"premium_report"}}"""u8.ToArray()).Target);

        // ...while the SDK's default options match names ignoring case, the last one winning.
        Assert.Equal("premium_report", SdkReading.Of("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"premium_report"}}"""u8.ToArray(), SdkParamsReader.DefaultOptions).Target);
        Assert.Equal("premium_report", SdkReading.Of("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Name":"premium_report"}}"""u8.ToArray(), SdkParamsReader.DefaultOptions).Target);
        Assert.Equal("2026-07-28", SdkReading.Of("""{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_META":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"""u8.ToArray()).MetaProtocolVersion);
        Assert.Equal(SdkOutcome.Refused, SdkReading.Of("""{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"m":"\ud800"}}}"""u8.ToArray()).Outcome);
    }

    /// <summary>
    /// The property, for both ways the SDK binds params (exact member names, as <c>MapMcp()</c> does; and ignoring case,
    /// as its default options do): false only when either would run something the guard did not see as such.
    /// </summary>
    internal static bool Agrees(byte[] body, DifferentialTally tally) =>
        Agrees(body, SdkReading.Of(body, SdkParamsReader.SourceGenerated), tally)
        & Agrees(body, SdkReading.Of(body, SdkParamsReader.DefaultOptions), tally);

    private static bool Agrees(byte[] body, SdkReading sdk, DifferentialTally tally)
    {
        if (!McpEnvelopeParser.TryParse(body, protocolVersionHeader: null, maxDepth: 64, out var envelope, out _))
        {
            tally.Count(sdk.Outcome is SdkOutcome.Request or SdkOutcome.Notification ? Verdict.GuardStricter : Verdict.BothRefused);
            return true;
        }

        switch (sdk.Outcome)
        {
            case SdkOutcome.Request:
                var same = envelope!.Kind == McpMessageKind.Request
                    && envelope.Method == sdk.Method
                    && Equals(envelope.Id.ToObject(), sdk.Id.Id)
                    && (sdk.Target is null || envelope.RoutingName == sdk.Target)
                    && (sdk.MetaProtocolVersion is null || envelope.ProtocolVersion == sdk.MetaProtocolVersion);
                tally.Count(!same ? Verdict.Disagreed : sdk.Target is null ? Verdict.AgreedRequest : Verdict.AgreedRoutedRequest);
                return same;

            case SdkOutcome.Notification:
                var sameNotification = envelope!.Kind == McpMessageKind.Notification && envelope.Method == sdk.Method;
                tally.Count(sameNotification ? Verdict.AgreedNotification : Verdict.Disagreed);
                return sameNotification;

            default:
                // The SDK runs no handler; the guard's reading cannot let anything run that it did not see.
                tally.Count(Verdict.SdkStricter);
                return true;
        }
    }
}

internal enum Verdict
{
    AgreedRequest,
    AgreedRoutedRequest,
    AgreedNotification,
    GuardStricter,
    BothRefused,
    SdkStricter,
    Disagreed,
}

/// <summary>What the differential runs found, counted across CsCheck's threads.</summary>
internal sealed class DifferentialTally
{
    private readonly long[] _counts = new long[Enum.GetValues<Verdict>().Length];

    public long Total => _counts.Sum();

    public long AgreedRequests => _counts[(int)Verdict.AgreedRequest] + _counts[(int)Verdict.AgreedRoutedRequest];

    public long AgreedRoutedRequests => _counts[(int)Verdict.AgreedRoutedRequest];

    public long AgreedNotifications => _counts[(int)Verdict.AgreedNotification];

    public long GuardRefused => _counts[(int)Verdict.GuardStricter] + _counts[(int)Verdict.BothRefused];

    public void Count(Verdict verdict) => Interlocked.Increment(ref _counts[(int)verdict]);

    public override string ToString() =>
        $"same request {AgreedRequests:N0} (of which routed by name or uri {AgreedRoutedRequests:N0}), "
        + $"same notification {AgreedNotifications:N0}, refused by both {_counts[(int)Verdict.BothRefused]:N0}, "
        + $"refused by the guard only {_counts[(int)Verdict.GuardStricter]:N0}, run by neither but accepted by the guard {_counts[(int)Verdict.SdkStricter]:N0}, "
        + $"read differently {_counts[(int)Verdict.Disagreed]:N0}";
}
