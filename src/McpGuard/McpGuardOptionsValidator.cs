using McpGuard.Admin;
using McpGuard.Auth;
using McpGuard.Credits;
using McpGuard.Errors;
using McpGuard.RateLimiting;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace McpGuard;

/// <summary>Checks the whole of <see cref="McpGuardOptions"/> and reports every problem in one failure.</summary>
/// <param name="schemes">The app's authentication schemes (McpGuard registers authentication, so there always is a provider).</param>
internal sealed class McpGuardOptionsValidator(IAuthenticationSchemeProvider? schemes = null) : IValidateOptions<McpGuardOptions>
{
    private const string Section = "McpGuard";

    public ValidateOptionsResult Validate(string? name, McpGuardOptions options)
    {
        var errors = new List<string>();

        if (string.IsNullOrWhiteSpace(options.Path) || !options.Path.StartsWith('/'))
        {
            errors.Add($"{Section}:Path must start with '/' (got '{options.Path}').");
        }

        if (options.MaxRequestBodySize < 1 || options.MaxRequestBodySize > Array.MaxLength)
        {
            errors.Add($"{Section}:MaxRequestBodySize must be between 1 and {Array.MaxLength} bytes (got {options.MaxRequestBodySize}).");
        }

        if (options.MaxJsonDepth is < 1 or > 1024)
        {
            errors.Add($"{Section}:MaxJsonDepth must be between 1 and 1024 (got {options.MaxJsonDepth}).");
        }

        if (string.IsNullOrWhiteSpace(options.RequestIdHeader) || !options.RequestIdHeader.All(IsTokenChar))
        {
            errors.Add($"{Section}:RequestIdHeader must be a valid HTTP header name (got '{options.RequestIdHeader}').");
        }

        for (var i = 0; i < options.AllowedOrigins.Count; i++)
        {
            var origin = options.AllowedOrigins[i];
            if (origin == "*")
            {
                continue;
            }

            if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri)
                || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps)
                || uri.PathAndQuery != "/" || origin.EndsWith('/'))
            {
                errors.Add($"{Section}:AllowedOrigins:{i} must be '*' or an origin like 'https://app.example.com' with no path or trailing slash (got '{origin}').");
            }
        }

        if (options.Store is { } store && !Enum.IsDefined(store))
        {
            errors.Add($"{Section}:Store must be Sqlite or InMemory (got '{store}').");
        }

        if (options.SqlitePath is not null && string.IsNullOrWhiteSpace(options.SqlitePath))
        {
            errors.Add($"{Section}:SqlitePath must name the SQLite file.");
        }

        McpGuardErrorCatalog.Validate(options.Errors, $"{Section}:Errors", errors);
        AuthOptionsValidation.Validate(options, errors, options.Auth.Schemes.Count > 0 ? RegisteredSchemes() : null);
        RateLimitOptionsValidation.Validate(options, errors);
        CreditOptionsValidation.Validate(options, errors);
        AdminOptionsValidation.Validate(options, errors);

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static bool IsTokenChar(char c) =>
        char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c, StringComparison.Ordinal);

    private string[]? RegisteredSchemes() =>
        schemes is null
            ? null
            // The framework's provider answers from memory; its Task is already complete.
            : [.. schemes.GetAllSchemesAsync().GetAwaiter().GetResult().Select(s => s.Name)];
}
