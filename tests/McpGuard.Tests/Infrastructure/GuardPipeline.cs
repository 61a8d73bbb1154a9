using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace McpGuard.Tests.Infrastructure;

/// <summary>
/// McpGuard's gates without a host: the services <c>AddMcpGuard</c> registers for the sample's appsettings.json (with
/// overrides, in the in-memory store), and <see cref="McpGuardPipeline"/> run on a <see cref="DefaultHttpContext"/> per
/// request, each in its own DI scope (authentication handlers are per request). Behind the gates sits an endpoint that
/// only counts. For what one gate decides; what a client sees on the wire is for <see cref="GuardedHost"/>.
/// </summary>
public sealed class GuardPipeline : IAsyncDisposable
{
    private readonly ServiceProvider _provider;
    private readonly List<IHostedService> _started;
    private int _reached;

    private GuardPipeline(ServiceProvider provider, List<IHostedService> started)
    {
        _provider = provider;
        _started = started;
    }

    public IServiceProvider Services => _provider;

    /// <summary>How many requests passed every gate and reached the endpoint.</summary>
    public int Reached => Volatile.Read(ref _reached);

    /// <summary>The sample's McpGuard configuration with <paramref name="overrides"/>; the store's start-up (seeding) has run.</summary>
    public static async Task<GuardPipeline> StartSampleAsync(IReadOnlyDictionary<string, string?>? overrides = null)
    {
        var configuration = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: false)
            .AddInMemoryCollection(new Dictionary<string, string?> { ["McpGuard:Store"] = "InMemory" })
            .AddInMemoryCollection(overrides ?? new Dictionary<string, string?>())
            .Build();
        var services = new ServiceCollection().AddLogging();
        services.AddMcpGuard(configuration.GetSection("McpGuard"));
        var provider = services.BuildServiceProvider(new ServiceProviderOptions { ValidateScopes = true });
        var started = new List<IHostedService>();
        foreach (var hosted in provider.GetServices<IHostedService>())
        {
            await hosted.StartAsync(CancellationToken.None);
            started.Add(hosted);
        }

        return new GuardPipeline(provider, started);
    }

    /// <summary>
    /// Runs a POST to <c>/mcp</c> with the headers a Streamable HTTP client sends (as <see cref="GuardedHost.PostMcpAsync(string, string?, string?, IReadOnlyDictionary{string, string}?, string, string?)"/>
    /// does) through the gates, and returns what the guard (or the counting endpoint) answered as an <see cref="HttpResponseMessage"/>,
    /// so the same exact assertions apply.
    /// </summary>
    public async Task<HttpResponseMessage> PostMcpAsync(string body, IReadOnlyDictionary<string, string>? headers = null, string? apiKey = DemoKeys.Alice)
    {
        await using var scope = _provider.CreateAsyncScope();
        var context = new DefaultHttpContext { RequestServices = scope.ServiceProvider };
        context.Features.Set<IHttpRequestLifetimeFeature>(new HttpRequestLifetimeFeature());
        var bytes = Encoding.UTF8.GetBytes(body);
        context.Request.Method = HttpMethods.Post;
        context.Request.Scheme = "http";
        context.Request.Host = new HostString("127.0.0.1");
        context.Request.Path = "/mcp";
        context.Request.ContentType = "application/json";
        context.Request.ContentLength = bytes.Length;
        context.Request.Headers.Accept = "application/json, text/event-stream";
        if (apiKey is not null && headers?.ContainsKey("Authorization") != true)
        {
            context.Request.Headers.Authorization = $"Bearer {apiKey}";
        }

        foreach (var (name, value) in headers ?? new Dictionary<string, string>())
        {
            context.Request.Headers[name] = value;
        }

        context.Request.Body = new MemoryStream(bytes);
        var responseBody = new MemoryStream();
        context.Response.Body = responseBody;

        await _provider.GetRequiredService<McpGuardPipeline>().InvokeAsync(context, async reached =>
        {
            Interlocked.Increment(ref _reached);
            reached.Response.ContentType = "application/json";
            await reached.Response.WriteAsync("""{"reached":true}""");
        });

        var response = new HttpResponseMessage((System.Net.HttpStatusCode)context.Response.StatusCode)
        {
            Content = new ByteArrayContent(responseBody.ToArray()),
        };
        foreach (var (name, values) in context.Response.Headers)
        {
            if (!response.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values))
            {
                response.Content.Headers.TryAddWithoutValidation(name, (IEnumerable<string?>)values);
            }
        }

        return response;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var hosted in Enumerable.Reverse(_started))
        {
            await hosted.StopAsync(CancellationToken.None);
        }

        await _provider.DisposeAsync();
    }
}
