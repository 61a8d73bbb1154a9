namespace McpGuard.Auth;

/// <summary>The authentication and authorization part of options validation.</summary>
internal static class AuthOptionsValidation
{
    /// <param name="options">The options.</param>
    /// <param name="errors">Where problems are added.</param>
    /// <param name="registeredSchemes">The app's authentication schemes, to check <c>Auth:Schemes</c> against; null when unknown.</param>
    public static void Validate(McpGuardOptions options, List<string> errors, IReadOnlyCollection<string>? registeredSchemes = null)
    {
        var auth = options.Auth;
        const string At = "McpGuard:Auth";
        var enabled = auth.ApiKeys.Enabled || auth.Jwt.Enabled || auth.Schemes.Count > 0;

        if (auth.Resource is not null || enabled)
        {
            if (string.IsNullOrWhiteSpace(auth.Resource))
            {
                errors.Add($"{At}:Resource is required when API keys or JWTs are enabled: the canonical URI of the MCP endpoint, e.g. https://mcp.example.com/mcp.");
            }
            else if (!Uri.TryCreate(auth.Resource, UriKind.Absolute, out var resource)
                || (resource.Scheme != Uri.UriSchemeHttp && resource.Scheme != Uri.UriSchemeHttps)
                || resource.Fragment.Length > 0 || resource.Query.Length > 0
                || (auth.Resource.EndsWith('/') ) || HasUnsafeChar(auth.Resource))
            {
                errors.Add($"{At}:Resource must be an absolute http(s) URI with no query, fragment, trailing slash, comma or quote (got '{auth.Resource}').");
            }
        }

        for (var i = 0; i < auth.AuthorizationServers.Count; i++)
        {
            if (!IsAbsoluteHttp(auth.AuthorizationServers[i]))
            {
                errors.Add($"{At}:AuthorizationServers:{i} must be an absolute http(s) URI (got '{auth.AuthorizationServers[i]}').");
            }
        }

        if (auth.ResourceDocumentation is not null && !IsAbsoluteHttp(auth.ResourceDocumentation))
        {
            errors.Add($"{At}:ResourceDocumentation must be an absolute http(s) URI (got '{auth.ResourceDocumentation}').");
        }

        CheckScopes(auth.ScopesSupported, $"{At}:ScopesSupported", errors);

        var keys = auth.ApiKeys;
        if (string.IsNullOrEmpty(keys.Prefix) || !keys.Prefix.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c)))
        {
            errors.Add($"{At}:ApiKeys:Prefix must be lowercase letters and digits, like 'mcpg' (got '{keys.Prefix}').");
        }

        if (keys.HeaderName is { } header && (header.Length == 0 || !header.All(c => char.IsAsciiLetterOrDigit(c) || c == '-')))
        {
            errors.Add($"{At}:ApiKeys:HeaderName must be a header name like 'X-Api-Key' (got '{header}').");
        }

        var ids = new HashSet<string>(StringComparer.Ordinal);
        for (var i = 0; i < keys.Keys.Count; i++)
        {
            var key = keys.Keys[i];
            var keyAt = $"{At}:ApiKeys:Keys:{i}";
            if (string.IsNullOrWhiteSpace(key.Id))
            {
                errors.Add($"{keyAt}:Id is required.");
            }
            else if (!ids.Add(key.Id))
            {
                errors.Add($"{keyAt}:Id '{key.Id}' is used by another key.");
            }

            if (!Credentials.IsSha256Hex(key.Hash))
            {
                errors.Add($"{keyAt}:Hash must be the 64-character lowercase hex SHA-256 of the key (see McpGuardApiKey.Hash or the sample's 'hash' command).");
            }

            if (string.IsNullOrWhiteSpace(key.Account))
            {
                errors.Add($"{keyAt}:Account is required.");
            }

            CheckScopes(key.Scopes, $"{keyAt}:Scopes", errors);
            if (key.MaxPriceMicro is < 0)
            {
                errors.Add($"{keyAt}:MaxPriceMicro must be 0 or more micro-units, or unset for no ceiling (got {key.MaxPriceMicro}).");
            }
        }

        var jwt = auth.Jwt;
        if (jwt.Enabled)
        {
            if (auth.AuthorizationServers.Count == 0)
            {
                errors.Add($"{At}:AuthorizationServers needs at least one entry when JWTs are enabled (RFC 9728 metadata requires it).");
            }

            if (jwt.Authority is null && jwt.SigningKey is null)
            {
                errors.Add($"{At}:Jwt needs an Authority (to fetch signing keys) or a SigningKey.");
            }

            if (jwt.Authority is null && string.IsNullOrWhiteSpace(jwt.Issuer))
            {
                errors.Add($"{At}:Jwt:Issuer is required unless an Authority supplies it.");
            }

            if (jwt.Authority is not null && !IsAbsoluteHttp(jwt.Authority))
            {
                errors.Add($"{At}:Jwt:Authority must be an absolute http(s) URI (got '{jwt.Authority}').");
            }

            if (jwt.SigningKey is not null && !IsStrongBase64Key(jwt.SigningKey))
            {
                errors.Add($"{At}:Jwt:SigningKey must be base64 of at least 32 bytes.");
            }

            if (string.IsNullOrWhiteSpace(jwt.AccountClaim))
            {
                errors.Add($"{At}:Jwt:AccountClaim must name a claim, like 'sub'.");
            }

            if (jwt.ClockSkew < TimeSpan.Zero || jwt.ClockSkew > TimeSpan.FromMinutes(10))
            {
                errors.Add($"{At}:Jwt:ClockSkew must be between 00:00:00 and 00:10:00 (got {jwt.ClockSkew}).");
            }
        }

        if (auth.Schemes.Count > 0)
        {
            if (jwt.Enabled)
            {
                errors.Add($"{At}:Schemes and {At}:Jwt:Enabled cannot both be set: with Schemes, the app's own schemes validate tokens instead of McpGuard.");
            }

            else if (string.IsNullOrWhiteSpace(jwt.AccountClaim))
            {
                errors.Add($"{At}:Jwt:AccountClaim must name a claim, like 'sub'.");
            }

            for (var i = 0; i < auth.Schemes.Count; i++)
            {
                var scheme = auth.Schemes[i];
                if (string.IsNullOrWhiteSpace(scheme) || McpGuardSchemes.IsOwn(scheme))
                {
                    errors.Add($"{At}:Schemes:{i} must name one of the app's own authentication schemes, not McpGuard's (got '{scheme}').");
                }
                else if (registeredSchemes is not null && !registeredSchemes.Contains(scheme))
                {
                    var known = registeredSchemes.Where(s => !McpGuardSchemes.IsOwn(s)).Order(StringComparer.Ordinal).ToArray();
                    errors.Add($"{At}:Schemes:{i} '{scheme}' is not a registered authentication scheme (registered: {(known.Length > 0 ? string.Join(", ", known) : "none")}).");
                }
            }
        }

        foreach (var (tool, policy) in options.Tools)
        {
            CheckScopes(policy?.Scopes ?? [], $"McpGuard:Tools:{tool}:Scopes", errors);
        }

        foreach (var (method, policy) in options.Methods)
        {
            if (method == "tools/call")
            {
                errors.Add("McpGuard:Methods:tools/call is not allowed: give each tool its own policy under McpGuard:Tools.");
            }

            CheckScopes(policy?.Scopes ?? [], $"McpGuard:Methods:{method}:Scopes", errors);
        }
    }

    /// <summary>Scopes are RFC 6749 scope tokens, and never contain a comma (clients split challenges on commas).</summary>
    private static void CheckScopes(IList<string> scopes, string at, List<string> errors)
    {
        for (var i = 0; i < scopes.Count; i++)
        {
            var scope = scopes[i];
            if (string.IsNullOrEmpty(scope) || !IsScopeToken(scope))
            {
                errors.Add($"{at}:{i} '{scope}' is not a scope token (printable ASCII without spaces, quotes, backslashes or commas).");
            }
        }
    }

    /// <summary>An RFC 6749 scope token that never contains a comma (clients split challenges on commas).</summary>
    internal static bool IsScopeToken(string value) =>
        value.Length > 0 && value.All(c => c > 0x20 && c < 0x7f && c is not ('"' or '\\' or ','));

    private static bool IsAbsoluteHttp(string value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps) && !HasUnsafeChar(value);

    private static bool HasUnsafeChar(string value) => value.Contains(',', StringComparison.Ordinal) || value.Contains('"', StringComparison.Ordinal);

    private static bool IsStrongBase64Key(string value)
    {
        Span<byte> buffer = stackalloc byte[512];
        return Convert.TryFromBase64String(value, buffer, out var written) && written >= 32;
    }
}
