using McpGuard;
using McpGuard.Admin;
using McpGuard.Auth;
using McpGuard.Credits;
using McpGuard.RateLimiting;
using McpGuard.Errors;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Authentication.JwtBearer;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers McpGuard's services.</summary>
public static partial class McpGuardServiceCollectionExtensions
{
    /// <summary>
    /// Adds McpGuard, configured by the app configuration's <c>McpGuard</c> section (appsettings.json, environment variables
    /// such as <c>McpGuard__Auth__ApiKeys__Enabled</c>, the command line). The options are validated when the host starts,
    /// reporting every problem at once, and reload when the configuration changes; a reload that fails validation is
    /// logged and ignored. McpGuard registers only its own services; it changes nothing else in the app.
    /// </summary>
    public static McpGuardBuilder AddMcpGuard(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions<McpGuardOptions>().BindConfiguration("McpGuard")
            .Configure<IConfiguration>((options, configuration) => McpGuardMeteredPrices.Read(options, configuration.GetSection("McpGuard")));
        return services.AddMcpGuardServices();
    }

    /// <summary>Adds McpGuard, configured by <paramref name="configuration"/> (a section laid out like <c>McpGuard</c>), as <see cref="AddMcpGuard(IServiceCollection)"/> does.</summary>
    public static McpGuardBuilder AddMcpGuard(this IServiceCollection services, IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.Configure<McpGuardOptions>(configuration);
        services.Configure<McpGuardOptions>(options => McpGuardMeteredPrices.Read(options, configuration));
        return services.AddMcpGuardServices();
    }

    /// <summary>
    /// Adds McpGuard configured in code. Internal: McpGuard is configured through <see cref="IConfiguration"/> (in code,
    /// <c>AddInMemoryCollection</c>), so its options types stay out of the public API. Tests and benchmarks use this.
    /// </summary>
    internal static McpGuardBuilder AddMcpGuard(this IServiceCollection services, Action<McpGuardOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.Configure(configure);
        return services.AddMcpGuardServices();
    }

    private static McpGuardBuilder AddMcpGuardServices(this IServiceCollection services)
    {
        services.AddOptions<McpGuardOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<McpGuardOptions>, McpGuardOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.TryAddSingleton<McpGuard.Telemetry.RecentTraffic>();
        services.TryAddSingleton<McpGuard.Telemetry.McpGuardTelemetry>();
        services.TryAddSingleton<McpGuardMarkerService>();
        services.TryAddSingleton<McpGuardStateProvider>();
        services.TryAddSingleton<AllowedMethods>();
        services.TryAddSingleton<FrontDoor>();
        services.TryAddSingleton<AuthenticationGate>();
        services.TryAddSingleton<AuthorizationGate>();
        services.TryAddSingleton<IMcpGuardRateLimiterProvider, LocalRateLimiterProvider>();
        services.TryAddSingleton<RateLimitGate>();
        services.TryAddSingleton<CreditGate>();
        services.TryAddSingleton<ChargeSettlement>();
        services.TryAddSingleton<RefundRetry>();
        services.TryAddSingleton<AdminApi>();
        McpGuard.Storage.McpGuardStores.Add(services);
        services.TryAddSingleton<McpGuard.Tools.ToolStatusGate>();
        AddSchemes(services);

        services.TryAddSingleton<McpGuardErrorWriter>();
        services.TryAddSingleton<McpGuardPipeline>();
        services.TryAddSingleton<McpEndpoints>();
        services.TryAddEnumerable(ServiceDescriptor.Transient<Microsoft.AspNetCore.Hosting.IStartupFilter, McpGuardEndpointCheck>());
        return new McpGuardBuilder(services);
    }

    /// <summary>
    /// McpGuard's authentication schemes, API keys, its own JwtBearer and the admin key, registered once (a scheme name can be added
    /// only once). They never become the app's default: see <see cref="AppDefaultSchemeKeeper"/>.
    /// </summary>
    private static void AddSchemes(IServiceCollection services)
    {
        if (services.Any(d => d.ImplementationType == typeof(JwtBearerOptionsSetup)))
        {
            return;
        }

        services.AddSingleton<IConfigureOptions<JwtBearerOptions>, JwtBearerOptionsSetup>();
        services.AddSingleton<IOptionsChangeTokenSource<JwtBearerOptions>, JwtBearerOptionsReloadSource>();
        services.AddAuthentication()
            .AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, ApiKeyAuthenticationHandler>(McpGuardSchemes.ApiKey, displayName: null, configureOptions: null)
            .AddJwtBearer(McpGuardSchemes.Jwt, static _ => { })
            .AddScheme<Microsoft.AspNetCore.Authentication.AuthenticationSchemeOptions, AdminKeyAuthenticationHandler>(McpGuardSchemes.AdminKey, displayName: null, configureOptions: null);

        // The admin API's route group requires this policy unless McpGuard:Admin:Policy names one of the app's. Only the
        // policy is configured here: the authorization services are the app's to add (AddAuthorization()), since with them
        // WebApplication runs the authorization middleware on every request. MapMcpGuardAdmin asks for them.
        services.Configure<Microsoft.AspNetCore.Authorization.AuthorizationOptions>(static options => options.AddPolicy(AdminKeyAuthenticationHandler.PolicyName, static policy => policy
            .AddAuthenticationSchemes(McpGuardSchemes.AdminKey)
            .RequireAuthenticatedUser()));

        // The dashboard's page, script and style sheet hold no data (the page asks the admin API for everything, with the
        // admin key it is given): under the admin key they are open to anyone. Under McpGuard:Admin:Policy they require it.
        services.Configure<Microsoft.AspNetCore.Authorization.AuthorizationOptions>(static options => options.AddPolicy(McpGuard.Dashboard.DashboardAssets.OpenPolicyName, static policy => policy
            .RequireAssertion(static _ => true)));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<Microsoft.AspNetCore.Authentication.AuthenticationOptions>, AppDefaultSchemeKeeper>());
    }
}

/// <summary>Present when <c>AddMcpGuard</c> ran; lets the pipeline extensions fail with a clear message when it did not.</summary>
internal sealed class McpGuardMarkerService
{
    /// <summary>Set by <c>UseMcpGuard()</c>: the pipeline guards <c>McpGuard:Path</c> (for the start-up check).</summary>
    public bool UseMcpGuardCalled { get; set; }

    internal const string MissingMessage =
        "McpGuard's services are not registered. Call builder.Services.AddMcpGuard() in Program.cs before building the app.";

    internal static void EnsureRegistered(IServiceProvider services)
    {
        if (services.GetService(typeof(McpGuardMarkerService)) is null)
        {
            throw new InvalidOperationException(MissingMessage);
        }
    }
}
