using McpGuard.Errors;

namespace McpGuard;

/// <summary>
/// What a gate decided: the value it hands to the later steps (null when it has none, such as an anonymous caller), or
/// the refusal that ends the request. A refusal converts implicitly, so a gate returns its error as it is.
/// </summary>
internal readonly record struct GateResult<T>(T? Value, McpGuardError? Error)
    where T : class
{
    public static implicit operator GateResult<T>(McpGuardError error) => new(null, error);
}
