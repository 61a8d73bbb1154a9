namespace McpGuard.Credits;

/// <summary>The credits part of options validation.</summary>
internal static class CreditOptionsValidation
{
    private const string At = "McpGuard:Credits";

    public static void Validate(McpGuardOptions options, List<string> errors)
    {
        var credits = options.Credits;
        if (credits.Enabled && !(options.Auth.ApiKeys.Enabled || options.Auth.Jwt.Enabled))
        {
            errors.Add($"{At}:Enabled needs authentication (McpGuard:Auth:ApiKeys or McpGuard:Auth:Jwt): a priced call is charged to the caller's account.");
        }

        if (credits.Store is { } store && !Enum.IsDefined(store))
        {
            errors.Add($"{At}:Store must be Sqlite or InMemory (got '{store}').");
        }

        if (!Enum.IsDefined(credits.Durability))
        {
            errors.Add($"{At}:Durability must be ProcessCrash or PowerLoss (got '{credits.Durability}').");
        }

        if (credits.SqlitePath is not null && string.IsNullOrWhiteSpace(credits.SqlitePath))
        {
            errors.Add($"{At}:SqlitePath must name the SQLite file.");
        }

        if (credits.DefaultPrice < 0)
        {
            errors.Add($"{At}:DefaultPrice must be 0 or more micro-units (got {credits.DefaultPrice}).");
        }

        if (credits.UpstreamTimeout <= TimeSpan.Zero || credits.UpstreamTimeout > TimeSpan.FromHours(1))
        {
            errors.Add($"{At}:UpstreamTimeout must be between 00:00:00 (exclusive) and 01:00:00 (got {credits.UpstreamTimeout}).");
        }

        if (credits.RetentionDays is < 1 or > 36_500)
        {
            errors.Add($"{At}:RetentionDays must be between 1 and 36500 days, or unset to keep every row (got {credits.RetentionDays}).");
        }

        if (credits.TopUpUrl is { } url && !(Uri.TryCreate(url, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttps || uri.Scheme == Uri.UriSchemeHttp)))
        {
            errors.Add($"{At}:TopUpUrl must be an absolute http(s) URL (got '{url}').");
        }

        foreach (var (tool, policy) in options.Tools)
        {
            if (policy?.MeterError is { } meterError)
            {
                errors.Add($"McpGuard:Tools:{tool}:Price {meterError}");
            }
            else if (policy?.Price is < 0)
            {
                errors.Add($"McpGuard:Tools:{tool}:Price must be 0 or more micro-units (got {policy.Price}).");
            }

            if (policy is not null && !Enum.IsDefined(policy.Status))
            {
                errors.Add($"McpGuard:Tools:{tool}:Status must be Live, Paused or Archived (got '{policy.Status}').");
            }
        }

        foreach (var (method, policy) in options.Methods)
        {
            if (policy?.Price is < 0)
            {
                errors.Add($"McpGuard:Methods:{method}:Price must be 0 or more micro-units (got {policy.Price}).");
            }
        }

        foreach (var (account, settings) in options.Accounts)
        {
            if (settings is null)
            {
                continue;
            }

            if (settings.InitialBalance < 0)
            {
                errors.Add($"McpGuard:Accounts:{account}:InitialBalance must be 0 or more micro-units (got {settings.InitialBalance}).");
            }

            if (settings.MonthlyCap is < 0)
            {
                errors.Add($"McpGuard:Accounts:{account}:MonthlyCap must be 0 or more micro-units (got {settings.MonthlyCap}).");
            }

            if (settings.FreeCallsPerMonth < 0)
            {
                errors.Add($"McpGuard:Accounts:{account}:FreeCallsPerMonth must be 0 or more (got {settings.FreeCallsPerMonth}).");
            }
        }
    }
}
