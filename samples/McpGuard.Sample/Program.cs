using McpGuard.Sample;
using OpenTelemetry.Metrics;

// The sample's own command-line helpers (keygen, hash, token) and its unguarded mode for benchmarks
// (Sample:Guard=false) run instead of the server. Your own Program.cs starts with the next statement.
if (SampleCommands.TryRun(args, Console.Out))
{
    return;
}

var builder = WebApplication.CreateBuilder(args);

// 1. McpGuard's services, configured by the "McpGuard" section of appsettings.json. PostgreSQL and Redis are used
//    only when configuration picks them (McpGuard:Store=PostgreSql, McpGuard:RateLimits:Store=Redis).
builder.Services.AddMcpGuard().AddMcpGuardPostgreSql().AddMcpGuardRedis();

// 2. Your MCP server (C# SDK) on its HTTP transport. WithMcpGuard() turns tool exceptions into isError
//    results and shows each caller only the tools its scopes allow.
builder.Services.AddMcpServer()
    .WithHttpTransport()
    .WithTools<SampleTools>()
    .WithMcpGuard();

// 3. Optional: the admin API's authorization and OpenAPI document; health checks of the stores; metrics for Prometheus.
builder.Services.AddAuthorization();
builder.Services.AddOpenApi("mcpguard-admin");
builder.Services.AddHealthChecks().AddMcpGuardStores();
builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddMeter("McpGuard").AddPrometheusExporter());

var app = builder.Build();

// 4. Guard the endpoint at McpGuard:Path (default /mcp), then map it.
app.UseMcpGuard();
app.MapMcp("/mcp");
app.MapMcpGuardAdmin("/admin");                 // optional: the admin API
app.MapMcpGuardDashboard("/admin/ui");          // optional: its dashboard
app.MapOpenApi();                               // optional: its OpenAPI document
app.MapHealthChecks("/health");                 // optional: the health checks
app.MapPrometheusScrapingEndpoint("/metrics");  // optional: the metrics (Prometheus text format)

app.Run();
