using System.Buffers;
using McpGuard.Auth;
using McpGuard.Credits;

namespace McpGuard.Protocol;

/// <summary>
/// The one per-request object McpGuard keeps in <c>HttpContext.Features</c>: the request id, the state in
/// force when the request arrived, the envelope once the front door has parsed it, and the pooled body
/// buffer, returned when the response is done.
/// </summary>
internal sealed class McpGuardFeature(string requestId, McpGuardState state) : IDisposable
{
    private byte[]? _body;

    public string RequestId { get; } = requestId;

    public McpGuardState State { get; } = state;

    /// <summary>
    /// Whether the request goes to the legacy HTTP+SSE transport (<c>EnableLegacySse</c>), whose POST answers 202 before
    /// the call runs and sends the call's answer on the session's GET stream.
    /// </summary>
    public bool LegacySse { get; init; }

    /// <summary>Null until the front door accepted a POST body (and for GET/DELETE passed through).</summary>
    public McpEnvelope? Envelope { get; set; }

    /// <summary>The authenticated caller; null when authentication is off or the method is anonymous.</summary>
    public McpGuardCaller? Caller { get; set; }

    /// <summary>The charge taken for this request, settled after the endpoint ran; null for free calls.</summary>
    public ChargeTicket? Charge { get; set; }

    public void AttachBody(byte[] pooled) => _body = pooled;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _body, null) is { } body)
        {
            ArrayPool<byte>.Shared.Return(body);
        }
    }
}
