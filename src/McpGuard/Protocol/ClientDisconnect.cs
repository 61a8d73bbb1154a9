using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http;

namespace McpGuard.Protocol;

/// <summary>
/// Tells a client that went away from a request that went wrong. Kestrel reports a client that resets the connection
/// as <see cref="ConnectionResetException"/>, and a request it aborted as an <see cref="IOException"/> or
/// <see cref="OperationCanceledException"/> once <see cref="HttpContext.RequestAborted"/> fires. A
/// <see cref="BadHttpRequestException"/> is never a disconnect: it is the server refusing what the client sent (a
/// body cut short by a client that closed its side included), and it is answered as the client's error.
/// </summary>
internal static class ClientDisconnect
{
    /// <summary>Whether <paramref name="exception"/> means the client is gone, so there is nobody to answer.</summary>
    public static bool Caused(Exception exception, HttpContext context) =>
        exception is ConnectionResetException
        || ((exception is OperationCanceledException || exception is IOException and not BadHttpRequestException)
            && context.RequestAborted.IsCancellationRequested);
}
