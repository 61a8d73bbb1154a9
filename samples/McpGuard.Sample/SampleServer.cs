namespace McpGuard.Sample;

/// <summary>Builds the sample app; <c>Program</c> runs it and the integration tests host it on a loopback port.</summary>
public static class SampleServer
{
    /// <summary>The switch that turns the guard off, so benchmarks/compare.sh can measure what the guard costs.</summary>
    public const string GuardSwitch = "Sample:Guard";

    /// <summary>Creates the sample app.</summary>
    /// <param name="args">Command-line arguments (for example <c>--urls http://127.0.0.1:5090</c>).</param>
    /// <param name="configure">
    /// A first look at the builder, before the sample registers its services (tests add configuration here, and
    /// their services win over the guard's defaults). Configuration it adds is seen by <see cref="GuardSwitch"/>.
    /// </param>
    /// <remarks>
    /// With <c>Sample:Guard=false</c> the same MCP server answers on <c>/mcp</c> with no guard at all: no
    /// <c>AddMcpGuard</c>, no <c>WithMcpGuard</c> tool filter, no <c>UseMcpGuard</c> and no admin API. Keys,
    /// scopes, rate limits and prices are not checked. For measurements only.
    /// </remarks>
    public static WebApplication Create(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            ContentRootPath = AppContext.BaseDirectory,
        });

        configure?.Invoke(builder);
        var guarded = builder.Configuration.GetValue(GuardSwitch, defaultValue: true);

        if (guarded)
        {
            builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
        }

        var mcp = builder.Services.AddMcpServer(options => options.ServerInfo = new() { Name = "mcpguard-sample", Version = "0.1.0" })
            .WithTools<SampleTools>();
        if (guarded)
        {
            mcp.WithMcpGuard();
        }

        var app = builder.Build();
        if (guarded)
        {
            app.UseMcpGuard();
        }

        app.MapStatelessMcp("/mcp");
        if (guarded)
        {
            app.MapMcpGuardAdmin("/admin");
        }

        return app;
    }
}
