namespace McpGuard.Credits;

/// <summary>
/// A ledger that can give back exactly the charge one attempt made: the usage row for <c>requestId</c> of
/// <c>account</c> written at <c>chargedAt</c> (to the microsecond), and no other. McpGuard uses it for a charge whose
/// outcome is unknown (the ledger failed or timed out while charging, and the call was refused): a client that retries
/// with the same request id may have been charged and served by the retry, and that charge must stand. Stores that do
/// not implement it get the compensating refund only for request ids McpGuard made (which no retry can reuse).
/// </summary>
internal interface IAttemptRefunds
{
    /// <summary>Refunds the charge of that attempt if it landed and is not refunded yet; false otherwise (nothing written).</summary>
    ValueTask<bool> RefundAttemptAsync(string requestId, string account, DateTimeOffset chargedAt, DateTimeOffset now, CancellationToken cancellationToken);
}
