using McpGuard.Admin;
using McpGuard.Auth;
using McpGuard.Credits;
using McpGuard.Errors;
using McpGuard.Protocol;
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

        if (string.IsNullOrWhiteSpace(options.RequestIdHeader) || !options.RequestIdHeader.All(HttpSyntax.IsTokenChar))
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
            errors.Add($"{Section}:Store must be Sqlite, InMemory or PostgreSql (got '{store}').");
        }

        if ((options.Store ?? options.Credits.Store) == McpGuardStoreKind.PostgreSql)
        {
            if (string.IsNullOrWhiteSpace(options.PostgreSql.ConnectionString))
            {
                errors.Add($"{Section}:PostgreSql:ConnectionString is required when {Section}:Store is PostgreSql (for example 'Host=localhost;Database=app;Username=mcpguard;Password=...').");
            }

            if (string.IsNullOrWhiteSpace(options.PostgreSql.Schema) || options.PostgreSql.Schema.Length > 55
                || !(char.IsAsciiLetterLower(options.PostgreSql.Schema[0]) || options.PostgreSql.Schema[0] == '_')
                || !options.PostgreSql.Schema.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '_'))
            {
                errors.Add($"{Section}:PostgreSql:Schema must be a lower-case PostgreSQL identifier of at most 55 characters: letters, digits and '_', not starting with a digit (got '{options.PostgreSql.Schema}').");
            }
        }

        if (options.RateLimits.Store == McpGuardRateLimitStoreKind.Redis)
        {
            if (string.IsNullOrWhiteSpace(options.Redis.Configuration))
            {
                errors.Add($"{Section}:Redis:Configuration is required when {Section}:RateLimits:Store is Redis (a StackExchange.Redis configuration string, for example 'localhost:6379').");
            }

            if (string.IsNullOrEmpty(options.Redis.KeyPrefix) || options.Redis.KeyPrefix.Any(c => c is '{' or '}' || char.IsWhiteSpace(c) || char.IsControl(c)))
            {
                errors.Add($"{Section}:Redis:KeyPrefix must be non-empty, without braces or white space (got '{options.Redis.KeyPrefix}').");
            }
        }

        if (options.StoreTimeout < TimeSpan.FromMilliseconds(100) || options.StoreTimeout > TimeSpan.FromMinutes(1))
        {
            errors.Add($"{Section}:StoreTimeout must be between 00:00:00.1 and 00:01:00 (got '{options.StoreTimeout}').");
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
        UpstreamOptionsValidation.Validate(options, errors);

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }


    private string[]? RegisteredSchemes() =>
        schemes is null
            ? null
            // The framework's provider answers from memory; its Task is already complete.
            : [.. schemes.GetAllSchemesAsync().GetAwaiter().GetResult().Select(s => s.Name)];
}
