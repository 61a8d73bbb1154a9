using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace McpGuard.Benchmarks;

/// <summary>
/// YARP's own direct forwarding (<c>MapForwarder</c>) with nothing else: the baseline benchmarks/gateway.sh measures the
/// gateway against, to tell the cost of any proxy hop on this machine from the cost of the guard.
/// <c>bare-proxy --urls http://127.0.0.1:5702 --upstream http://127.0.0.1:5701</c> forwards <c>/mcp</c> to <c>&lt;upstream&gt;/mcp</c>.
/// </summary>
internal static class BareProxy
{
    public static async Task<int> RunAsync(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args[1..]);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddHttpForwarder();
        var app = builder.Build();
        app.MapForwarder("/mcp", builder.Configuration["upstream"] ?? throw new ArgumentException("bare-proxy needs --upstream <scheme://host:port>"));
        await app.RunAsync();
        return 0;
    }
}
