using System.Buffers;
using System.IO.Pipelines;
using McpGuard.Auth;
using McpGuard.Credits;

namespace McpGuard.Protocol;

/// <summary>
/// The one per-request object McpGuard keeps in <c>HttpContext.Features</c>: the request id, the state in force when
/// the request arrived and the pooled body buffer, returned when the response is done; then what each step decided, each
/// an immutable value written once by its one owner and only read after: the envelope (the front door), the caller
/// (authentication) and the charge (the credit gate). A second write is a bug and throws.
/// </summary>
internal sealed class McpGuardFeature(string requestId, McpGuardState state) : IDisposable
{
    private byte[]? _body;

    public string RequestId { get; } = requestId;

    /// <summary>
    /// The guarded request without a caller (anonymous, or authentication off) whose execution context this is: how
    /// McpGuard's tool filters find its request id, since the SDK passes them only authenticated principals.
    /// </summary>
    internal static readonly AsyncLocal<McpGuardFeature?> AnonymousRequest = new();

    public McpGuardState State { get; } = state;

    /// <summary>Whether McpGuard made <see cref="RequestId"/> (the client sent no well-formed one).</summary>
    public bool NewRequestId { get; init; }

    /// <summary>
    /// Whether the request goes to the legacy HTTP+SSE transport (<c>EnableLegacySse</c>), whose POST answers 202 before
    /// the call runs and sends the call's answer on the session's GET stream.
    /// </summary>
    public bool LegacySse { get; init; }

    /// <summary>
    /// The server's request pipe when the front door left the body there, read and not consumed, for the endpoint to read
    /// (<see cref="FrontDoor.InPlaceLimit"/>); null when the body was copied (<see cref="AttachBody(byte[])"/>).
    /// </summary>
    public PipeReader? BodyInPlace { get; private set; }

    /// <summary>Null until the front door accepted a POST body (and for GET/DELETE passed through).</summary>
    public McpEnvelope? Envelope { get; private set; }

    /// <summary>The authenticated caller; null when authentication is off or the method is anonymous.</summary>
    public McpGuardCaller? Caller { get; private set; }

    /// <summary>The charge taken for this request, settled after the endpoint ran; null for free calls.</summary>
    public ChargeTicket? Charge { get; private set; }

    /// <summary>How the charge settled, once the endpoint has answered; null before that and for free calls.</summary>
    public Settlement? Settlement { get; private set; }

    /// <summary>The front door's reading of the body.</summary>
    public void RecordEnvelope(McpEnvelope envelope) => Envelope = Once(Envelope, envelope);

    /// <summary>Who authentication found (nothing is recorded for an anonymous caller).</summary>
    public void RecordCaller(McpGuardCaller caller) => Caller = Once(Caller, caller);

    /// <summary>The charge the credit gate took.</summary>
    public void RecordCharge(ChargeTicket charge) => Charge = Once(Charge, charge);

    /// <summary>How the settlement judged the endpoint's answer.</summary>
    public void RecordSettlement(Settlement settlement) => Settlement = Once(Settlement, settlement);

    private static T Once<T>(T? current, T value)
        where T : class =>
        current is null ? value : throw new InvalidOperationException($"The request's {typeof(T).Name} was already recorded.");

    /// <summary>The body the front door copied: returned to the pool when the response is done.</summary>
    public void AttachBody(byte[] pooled) => _body = pooled;

    /// <summary>The body the front door read in place: what the endpoint leaves of it is consumed by <see cref="ReleaseBodyInPlace"/>.</summary>
    public void AttachBody(PipeReader inPlace) => BodyInPlace = inPlace;

    /// <summary>
    /// Consumes what the endpoint left of a body read in place, once the endpoint is done (the pipeline's last step). The
    /// server holds its connection's input while a fully read body is not consumed, and drains it only for a request that
    /// was not aborted: a body nobody consumed would otherwise fail the connection's next read (Kestrel logs "Reading is
    /// already in progress" as it lets go of a client that left). <see cref="Dispose"/> runs too late for that.
    /// </summary>
    public void ReleaseBodyInPlace()
    {
        if (BodyInPlace is not { } reader)
        {
            return;
        }

        try
        {
            if (reader.TryRead(out var rest))
            {
                reader.AdvanceTo(rest.Buffer.End);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or OperationCanceledException)
        {
            // The endpoint completed the reader or left a read of its own open (an InvalidOperation or BadHttpRequest
            // exception), or the request was aborted (ConnectionAborted): the server is left to end the body.
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _body, null) is { } body)
        {
            ArrayPool<byte>.Shared.Return(body);
        }
    }
}

/// <summary>How a charge settled: it stands when the endpoint served the call; otherwise the reason it was refunded.</summary>
/// <param name="Unserved">Why the call was not served (<c>status 4xx/5xx</c>, <c>JSON-RPC error</c>, <c>timeout</c>…); null when served.</param>
internal sealed record Settlement(string? Unserved)
{
    public bool Served => Unserved is null;

    /// <summary>The error McpGuard answered in the endpoint's place (<c>upstream_timeout</c>); null when the endpoint answered.</summary>
    public Errors.McpGuardErrorDescriptor? AnsweredWith { get; init; }
}
