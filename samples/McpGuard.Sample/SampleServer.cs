namespace McpGuard.Sample;

/// <summary>Builds the sample app; <c>Program</c> runs it and the integration tests host it on a loopback port.</summary>
public static class SampleServer
{
    /// <summary>Creates the sample app.</summary>
    /// <param name="args">Command-line arguments (for example <c>--urls http://127.0.0.1:5090</c>).</param>
    /// <param name="configure">A last look at the builder before the app is built (tests add configuration here).</param>
    public static WebApplication Create(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            ContentRootPath = AppContext.BaseDirectory,
        });

        builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));

        builder.Services.AddMcpServer(options => options.ServerInfo = new() { Name = "mcpguard-sample", Version = "0.1.0" })
            .WithTools<SampleTools>()
            .WithMcpGuard();

        configure?.Invoke(builder);

        var app = builder.Build();
        app.UseMcpGuard();
        app.MapStatelessMcp("/mcp");
        app.MapMcpGuardAdmin("/admin");
        return app;
    }
}
