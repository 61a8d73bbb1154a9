namespace McpGuard.Admin;

/// <summary>The admin API part of options validation.</summary>
internal static class AdminOptionsValidation
{
    private const string At = "McpGuard:Admin";

    public static void Validate(McpGuardOptions options, List<string> errors)
    {
        var admin = options.Admin;
        if (admin.KeyHash is { } hash && !Auth.Credentials.IsSha256Hex(hash))
        {
            errors.Add($"{At}:KeyHash must be the 64-character lowercase hex SHA-256 of the admin key (see McpGuardApiKey.Hash or the sample's 'hash' command).");
        }

        if (admin.Policy is { } policy && string.IsNullOrWhiteSpace(policy))
        {
            errors.Add($"{At}:Policy must name an authorization policy (got '{policy}').");
        }
    }
}
