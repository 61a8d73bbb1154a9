using System.Collections.Frozen;
using McpGuard.Auth;
using McpGuard.Credits;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;

namespace McpGuard.Tests.Protocol;

/// <summary>
/// Each gate writes one result: the envelope (front door), the caller (authentication), the charge (credit gate) and the
/// settlement (after the endpoint) are each recorded once, and a second write is a bug that fails loudly.
/// </summary>
public sealed class McpGuardFeatureTests
{
    [Fact]
    public void Every_result_is_recorded_once_and_a_second_write_throws()
    {
        var feature = new McpGuardFeature("req_feature-test", new McpGuardState(new McpGuardOptions()));
        var envelope = new McpEnvelope { Kind = McpMessageKind.Request, Id = new JsonRpcId(1), Method = McpMethods.ToolsCall, Name = "add" };
        var caller = new McpGuardCaller("alice", "k1", FrozenSet<string>.Empty, McpGuardCredentialKind.ApiKey);
        var charge = new ChargeTicket(new DefaultHttpContext().Response, 800, "800", free: false, balanceAfterMicro: 200);
        var settlement = new Settlement(Unserved: "JSON-RPC error");

        feature.RecordEnvelope(envelope);
        feature.RecordCaller(caller);
        feature.RecordCharge(charge);
        feature.RecordSettlement(settlement);

        Assert.Same(envelope, feature.Envelope);
        Assert.Same(caller, feature.Caller);
        Assert.Same(charge, feature.Charge);
        Assert.False(feature.Settlement!.Served);
        Assert.Equal("The request's McpEnvelope was already recorded.", Assert.Throws<InvalidOperationException>(() => feature.RecordEnvelope(envelope)).Message);
        Assert.Equal("The request's McpGuardCaller was already recorded.", Assert.Throws<InvalidOperationException>(() => feature.RecordCaller(caller)).Message);
        Assert.Equal("The request's ChargeTicket was already recorded.", Assert.Throws<InvalidOperationException>(() => feature.RecordCharge(charge)).Message);
        Assert.Equal("The request's Settlement was already recorded.", Assert.Throws<InvalidOperationException>(() => feature.RecordSettlement(new Settlement(null))).Message);
    }
}
