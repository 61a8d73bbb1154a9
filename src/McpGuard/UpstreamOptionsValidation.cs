using McpGuard.Protocol;
namespace McpGuard;

/// <summary>Checks <c>McpGuard:Upstream</c> (used by the proxy): whatever is set must be usable; the URL itself is required only by the proxy.</summary>
internal static class UpstreamOptionsValidation
{
    private const string Section = "McpGuard:Upstream";

    private static readonly HashSet<string> ReservedHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Content-Length", "Content-Type", "Transfer-Encoding", "Connection", "Upgrade", "TE", "Trailer",
        "Keep-Alive", "Proxy-Connection", "Mcp-Session-Id", "MCP-Protocol-Version", "Mcp-Method", "Mcp-Name", "Last-Event-ID",
        "Accept", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Prefix", "Forwarded",
    };

    public static void Validate(McpGuardOptions options, List<string> errors)
    {
        var upstream = options.Upstream;
        if (upstream.Url is { } url
            && (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
                || !string.IsNullOrEmpty(uri.Query) || !string.IsNullOrEmpty(uri.Fragment) || !string.IsNullOrEmpty(uri.UserInfo)))
        {
            errors.Add($"{Section}:Url must be an absolute http or https URL without query, fragment or user info, for example 'http://127.0.0.1:3001/mcp' (got '{url}').");
        }

        if (upstream.ConnectTimeout < TimeSpan.FromMilliseconds(100) || upstream.ConnectTimeout > TimeSpan.FromMinutes(5))
        {
            errors.Add($"{Section}:ConnectTimeout must be between 00:00:00.1 and 00:05:00 (got '{upstream.ConnectTimeout}').");
        }

        if (upstream.ResponseTimeout < TimeSpan.FromMilliseconds(100) || upstream.ResponseTimeout > TimeSpan.FromHours(1))
        {
            errors.Add($"{Section}:ResponseTimeout must be between 00:00:00.1 and 01:00:00 (got '{upstream.ResponseTimeout}').");
        }

        if (!Enum.IsDefined(upstream.PausedTools))
        {
            errors.Add($"{Section}:PausedTools must be Mark or Hide (got '{upstream.PausedTools}').");
        }

        if (!Enum.IsDefined(upstream.ArchivedTools))
        {
            errors.Add($"{Section}:ArchivedTools must be Mark or Hide (got '{upstream.ArchivedTools}').");
        }

        var credential = upstream.Credential;
        if (credential.Header is null)
        {
            if (credential.Value is not null || credential.EnvironmentVariable is not null)
            {
                errors.Add($"{Section}:Credential:Header is required when Credential:Value or Credential:EnvironmentVariable is set.");
            }

            return;
        }

        if (credential.Header.Length == 0 || !credential.Header.All(HttpSyntax.IsTokenChar) || ReservedHeaders.Contains(credential.Header)
            || string.Equals(credential.Header, options.RequestIdHeader, StringComparison.OrdinalIgnoreCase))
        {
            errors.Add($"{Section}:Credential:Header must be a valid HTTP header name that the proxy does not set itself, such as 'Authorization' or 'X-Api-Key' (got '{credential.Header}').");
        }

        if ((credential.Value is null) == (credential.EnvironmentVariable is null))
        {
            errors.Add($"{Section}:Credential needs exactly one of Value and EnvironmentVariable.");
        }
        else if (credential.EnvironmentVariable is { } variable && string.IsNullOrEmpty(Environment.GetEnvironmentVariable(variable)))
        {
            errors.Add($"{Section}:Credential:EnvironmentVariable names '{variable}', which is not set in the environment.");
        }

        if (ResolveCredential(credential) is { } value && !value.All(HttpSyntax.IsFieldValueChar))
        {
            // An HTTP header value: visible ASCII, spaces and tabs. Anything else the HTTP client refuses to send, call by call.
            errors.Add($"{Section}:Credential's value must be visible ASCII characters, spaces and tabs (a header value); it has other characters.");
        }
    }

    /// <summary>The credential's value now (from configuration or the environment), or null when there is none.</summary>
    public static string? ResolveCredential(McpGuardUpstreamCredentialOptions credential) =>
        credential.Header is null ? null : credential.Value ?? (credential.EnvironmentVariable is { } variable ? Environment.GetEnvironmentVariable(variable) : null);
}
