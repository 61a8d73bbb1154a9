using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace McpGuard.Auth;

/// <summary>
/// Configures McpGuard's own JwtBearer scheme from <see cref="McpGuardJwtOptions"/>: signature, issuer,
/// lifetime and an audience equal to the canonical resource, then <see cref="JwtContentRules"/> on the validated
/// token. Claims keep their JWT names (<c>sub</c>, <c>scope</c>).
/// </summary>
internal sealed class JwtBearerOptionsSetup : IConfigureNamedOptions<JwtBearerOptions>
{
    private readonly McpGuardStateProvider _states;
    private readonly TimeProvider _timeProvider;

    public JwtBearerOptionsSetup(McpGuardStateProvider states, IOptionsMonitorCache<JwtBearerOptions> cache, TimeProvider timeProvider)
    {
        _states = states;
        _timeProvider = timeProvider;

        // The handler caches its options; drop them when a good McpGuard reload lands so the next request rebuilds them.
        states.Reloaded += _ => cache.TryRemove(McpGuardSchemes.Jwt);
    }

    public void Configure(JwtBearerOptions options) => Configure(Options.DefaultName, options);

    public void Configure(string? name, JwtBearerOptions options)
    {
        if (name != McpGuardSchemes.Jwt)
        {
            return;
        }

        var guard = _states.Current.Options;
        var timeProvider = _timeProvider;
        var jwt = guard.Auth.Jwt;
        var audience = jwt.Audience ?? guard.Auth.Resource;
        options.MapInboundClaims = false;
        var accountClaim = jwt.AccountClaim;
        options.Events = new JwtBearerEvents
        {
            // IdentityModel has checked signature, issuer, audience and lifetime; McpGuard's own rules come last.
            OnTokenValidated = context =>
            {
                var refusal = context.SecurityToken is JsonWebToken token ? JwtContentRules.Refusal(token, accountClaim) : "not a JSON Web Token";
                if (refusal is not null)
                {
                    context.Fail(new JwtContentRefusedException(refusal));
                }

                return Task.CompletedTask;
            },
        };
        options.TimeProvider = timeProvider;
        options.Authority = jwt.Authority;
        options.RequireHttpsMetadata = !jwt.AllowInsecureMetadata;
        options.Audience = audience;
        options.TokenValidationParameters = new TokenValidationParameters
        {
            ValidateIssuer = true,
            ValidIssuer = jwt.Issuer,
            ValidateAudience = true,
            ValidAudience = audience,

            // The audience must equal the canonical resource; IdentityModel would otherwise accept "<resource>/" too.
            IgnoreTrailingSlashWhenValidatingAudience = false,
            ValidateLifetime = true,
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = jwt.ClockSkew,
            ValidateIssuerSigningKey = true,
            IssuerSigningKey = jwt.SigningKey is { } key ? new SymmetricSecurityKey(Convert.FromBase64String(key)) : null,
            NameClaimType = jwt.AccountClaim,
            LifetimeValidator = (notBefore, expires, _, parameters) =>
            {
                var now = timeProvider.GetUtcNow().UtcDateTime;
                return (notBefore is null || notBefore.Value <= now + parameters.ClockSkew)
                    && expires is not null && expires.Value > now - parameters.ClockSkew;
            },
        };
    }
}

/// <summary>Registers the one <see cref="JwtBearerOptionsSetup"/> singleton as an options configurer without a second instance.</summary>
internal sealed class JwtBearerOptionsSetupForwarder(JwtBearerOptionsSetup setup) : IConfigureNamedOptions<JwtBearerOptions>
{
    public void Configure(JwtBearerOptions options) => setup.Configure(options);

    public void Configure(string? name, JwtBearerOptions options) => setup.Configure(name, options);
}
