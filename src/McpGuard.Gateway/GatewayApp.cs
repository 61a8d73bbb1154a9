using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace McpGuard.Gateway;

/// <summary>
/// The gateway: an ASP.NET Core app that reads <c>appsettings.json</c> from the working directory, environment variables
/// and <c>--McpGuard:…</c> command-line keys, and maps McpGuard's proxy (at <c>McpGuard:Path</c>, default <c>/mcp</c>), the
/// admin API (<c>/admin</c>) and its dashboard (<c>/admin/ui</c>), McpGuard's metrics in Prometheus text format behind the admin key (<c>/admin/metrics</c>) and
/// health (<c>/health</c>); traces go to an OTLP collector when <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> names one. Two shortcuts: <c>--upstream &lt;url&gt;</c> for
/// <c>--McpGuard:Upstream:Url</c>, and ASP.NET Core's own <c>--urls &lt;url&gt;</c>.
/// </summary>
internal static class GatewayApp
{
    internal const string Usage =
        """
        usage: mcpguard-gateway [--upstream <url>] [--urls <url>] [--McpGuard:<key> <value>]...
               mcpguard-gateway keygen [--prefix mcpg]   a new API key and the hash to configure
               mcpguard-gateway hash <key>               the hash of a key

        Reads appsettings.json from the working directory, then environment variables (McpGuard__Upstream__Url=…),
        then the command line. Serves the guarded MCP endpoint at McpGuard:Path (default /mcp), the admin API at
        /admin, its dashboard at /admin/ui, metrics at /admin/metrics (Prometheus text, admin key) and health at
        /health. Sends traces to
        OTEL_EXPORTER_OTLP_ENDPOINT when it is set. Manual: docs/gateway.md.
        """;

    /// <summary>Runs the gateway (or one of its commands) until it is stopped; the process's exit code.</summary>
    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        switch (args.FirstOrDefault())
        {
            case "keygen":
                var (key, hash) = McpGuardApiKey.Generate(Option(args, "--prefix") ?? "mcpg");
                output.WriteLine($"key:  {key}");
                output.WriteLine($"hash: {hash}");
                output.WriteLine("Give the key to its owner (it is shown only now) and add the hash to McpGuard:Auth:ApiKeys:Keys (or McpGuard:Admin:KeyHash).");
                return 0;
            case "hash" when args.Length == 2:
                output.WriteLine(McpGuardApiKey.Hash(args[1]));
                return 0;
            case "hash" or "help" or "--help" or "-h":
                output.WriteLine(Usage);
                return args[0] == "hash" ? 2 : 0;
        }

        WebApplication? app = null;
        try
        {
            app = Build(args);
            await app.StartAsync();
        }
        catch (GatewayConfigurationException ex)
        {
            error.WriteLine(ex.Message);
            return 2;
        }
        catch (OptionsValidationException ex)
        {
            error.WriteLine("mcpguard-gateway cannot start: the configuration is not valid:");
            foreach (var failure in ex.Failures)
            {
                error.WriteLine("  - " + failure);
            }

            if (app is not null)
            {
                await app.DisposeAsync();
            }

            return 2;
        }

        await app.WaitForShutdownAsync();
        await app.DisposeAsync();
        return 0;
    }

    /// <summary>Builds the gateway app; throws <see cref="GatewayConfigurationException"/> naming every missing setting.</summary>
    /// <param name="args">The command line.</param>
    /// <param name="contentRoot">Where <c>appsettings.json</c> is read from: the working directory unless given.</param>
    /// <param name="configure">Last changes to the builder before the configuration is checked (tests use it).</param>
    public static WebApplication Build(string[] args, string? contentRoot = null, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = ExpandShortcuts(args),
            ContentRootPath = contentRoot ?? Directory.GetCurrentDirectory(),
        });
        configure?.Invoke(builder);
        CheckRequired(builder.Configuration);

        builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"))
            .AddMcpGuardProxy()
            .AddMcpGuardPostgreSql()
            .AddMcpGuardRedis();
        builder.Services.AddAuthorization();
        builder.Services.AddHealthChecks().AddMcpGuardStores();
        var telemetry = builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddMeter("McpGuard").AddPrometheusExporter());
        if (!string.IsNullOrWhiteSpace(builder.Configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]))
        {
            // The exporter reads the endpoint, protocol and headers from the standard OTEL_* variables.
            telemetry.WithTracing(tracing => tracing.AddSource("McpGuard").AddOtlpExporter());
        }

        var app = builder.Build();
        app.MapMcpGuardProxy(builder.Configuration["McpGuard:Path"] is { Length: > 0 } path ? path : "/mcp");
        var admin = app.MapMcpGuardAdmin("/admin");
        // In the admin group: a scrape needs the admin key (Prometheus sends it with authorization: credentials).
        admin.MapPrometheusScrapingEndpoint("/metrics");
        app.MapMcpGuardDashboard("/admin/ui", "/admin");
        app.MapHealthChecks("/health");
        return app;
    }

    /// <summary><c>--upstream &lt;url&gt;</c> (or <c>--upstream=&lt;url&gt;</c>) becomes <c>--McpGuard:Upstream:Url</c>; the rest passes as it is.</summary>
    internal static string[] ExpandShortcuts(string[] args)
    {
        var expanded = new List<string>(args.Length);
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--upstream" && i + 1 < args.Length)
            {
                expanded.Add("--McpGuard:Upstream:Url");
                expanded.Add(args[++i]);
            }
            else if (args[i].StartsWith("--upstream=", StringComparison.Ordinal))
            {
                expanded.Add("--McpGuard:Upstream:Url=" + args[i]["--upstream=".Length..]);
            }
            else
            {
                expanded.Add(args[i]);
            }
        }

        return [.. expanded];
    }

    /// <summary>What a gateway cannot start without: where to forward, and some way to let callers in.</summary>
    private static void CheckRequired(ConfigurationManager configuration)
    {
        var problems = new List<string>();
        if (string.IsNullOrWhiteSpace(configuration["McpGuard:Upstream:Url"]))
        {
            problems.Add("No upstream: pass --upstream <url> (for example --upstream http://127.0.0.1:3001/mcp) or set McpGuard:Upstream:Url in appsettings.json.");
        }

        // Some way to let callers in, switched on: API keys (configured, or made at run time through the admin API), OAuth
        // tokens, or the app's own schemes. Key entries or an admin key alone, with API keys off, would open the gateway to all.
        var auth = configuration.GetSection("McpGuard:Auth");
        var keysOn = auth.GetValue("ApiKeys:Enabled", defaultValue: false);
        var keys = auth.GetSection("ApiKeys:Keys").GetChildren().Any();
        var admin = !string.IsNullOrWhiteSpace(configuration["McpGuard:Admin:KeyHash"]);
        var jwt = auth.GetValue("Jwt:Enabled", defaultValue: false);
        var schemes = auth.GetSection("Schemes").GetChildren().Any();
        if (!(keysOn && (keys || admin)) && !jwt && !schemes)
        {
            problems.Add(
                "No keys: a gateway lets no anonymous caller through. Turn on API keys (McpGuard:Auth:ApiKeys:Enabled=true) with keys in McpGuard:Auth:ApiKeys:Keys "
                + "(hashes from 'mcpguard-gateway keygen') or an admin key (McpGuard:Admin:KeyHash) to create them with the admin API, or OAuth tokens (McpGuard:Auth:Jwt).");
        }

        if (problems.Count > 0)
        {
            throw new GatewayConfigurationException("mcpguard-gateway cannot start:" + Environment.NewLine + string.Join(Environment.NewLine, problems.Select(p => "  - " + p))
                + Environment.NewLine + "Run 'mcpguard-gateway --help' for usage; the manual is docs/gateway.md.");
        }
    }

    private static string? Option(string[] args, string name)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
    }
}

/// <summary>A setting the gateway needs is missing; the message names each one and how to set it.</summary>
internal sealed class GatewayConfigurationException(string message) : Exception(message);
