using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace McpGuard.Auth;

/// <summary>
/// Configures McpGuard's own JwtBearer scheme from <see cref="McpGuardJwtOptions"/>: signature, issuer,
/// lifetime and an audience equal to the canonical resource, then <see cref="JwtContentRules"/> on the validated
/// token. Claims keep their JWT names (<c>sub</c>, <c>scope</c>). <see cref="JwtBearerOptionsReloadSource"/> tells the
/// options monitor when a good McpGuard reload makes them stale, so the next request rebuilds them.
/// </summary>
internal sealed class JwtBearerOptionsSetup(McpGuardStateProvider states, TimeProvider timeProvider) : IConfigureNamedOptions<JwtBearerOptions>
{
    private readonly McpGuardStateProvider _states = states;
    private readonly TimeProvider _timeProvider = timeProvider;

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

/// <summary>McpGuard's JwtBearer options change when McpGuard's configuration reloads (a good reload only).</summary>
internal sealed class JwtBearerOptionsReloadSource(McpGuardStateProvider states) : IOptionsChangeTokenSource<JwtBearerOptions>
{
    public string Name => McpGuardSchemes.Jwt;

    public Microsoft.Extensions.Primitives.IChangeToken GetChangeToken() => states.GetReloadToken();
}
