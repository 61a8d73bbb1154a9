using System.Text;
using BenchmarkDotNet.Attributes;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace McpGuard.Benchmarks;

/// <summary>What the guard is configured to do, and which call it guards.</summary>
public enum GateChainScenario
{
    /// <summary>
    /// <c>tools/call add</c> with an API key: front door, key authentication, a scope, three rate-limit windows
    /// (the default policy's two and the tool's own, per tool), an 800 µ charge on the in-memory ledger and its settlement.
    /// </summary>
    PricedAdd,

    /// <summary><c>tools/call echo</c> with the same configuration: free, so no charge and no settlement.</summary>
    FreeEcho,

    /// <summary><c>tools/call echo</c> with authentication, rate limits and credits all off: the front door alone.</summary>
    FrontDoorOnly,

    /// <summary><c>tools/call add</c> with the front door, key authentication and the scope; rate limits and credits off.</summary>
    AddAuthOnly,

    /// <summary><c>tools/call add</c> as <see cref="AddAuthOnly"/> plus the three rate-limit windows; credits off.</summary>
    AddAuthAndLimits,

    /// <summary>
    /// <c>tools/call search</c>, metered (2 µ per unit, at most 20,000), with everything <see cref="PricedAdd"/> has: the
    /// reservation of the maximum instead of the flat charge, and its capture (of the maximum: the endpoint reports no
    /// units) at settlement, before the headers.
    /// </summary>
    MeteredSearch,
}

/// <summary>
/// The whole gate chain in process, without the endpoint: <see cref="McpGuardPipeline.InvokeAsync"/> on a fresh
/// <see cref="DefaultHttpContext"/> per request, with a <c>next</c> that does nothing (so a priced call settles on
/// the success path). After the pipeline returns, the harness does what a server does at the end of a response:
/// it runs the <c>OnStarting</c> callbacks (the charge headers) and the <c>OnCompleted</c> ones (the pooled body
/// goes back). <see cref="ContextOnly"/> builds the same context and runs nothing; subtract it to get the guard's
/// own cost. Targets: under 10 µs and under 1 KB allocated per request.
/// </summary>
[MemoryDiagnoser]
[Config(typeof(MicroConfig.FixedInvocations))]
public class GateChainBenchmarks
{
    private const string Account = "bench";
    private const string Limit = "2000000000";

    private static readonly byte[] Answer = """{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"5"}]}}"""u8.ToArray();

    /// <summary>
    /// The endpoint: answers the call with a JSON-RPC result, as the MCP server would (a charge stands only on a served
    /// answer; without one it is refunded, which is not the path measured here).
    /// </summary>
    private static readonly RequestDelegate Next = static context =>
    {
        context.Response.ContentType = "application/json";
        return context.Response.Body.WriteAsync(Answer).AsTask();
    };

    private readonly CancellationTokenSource _connection = new();
    private ServiceProvider _services = null!;
    private McpGuardPipeline _pipeline = null!;
    private byte[] _body = [];
    private string _authorization = "";
    private string _contentLength = "";

    /// <summary>The configuration and call under test.</summary>
    [Params(GateChainScenario.PricedAdd, GateChainScenario.MeteredSearch, GateChainScenario.FreeEcho, GateChainScenario.FrontDoorOnly, GateChainScenario.AddAuthOnly, GateChainScenario.AddAuthAndLimits)]
    public GateChainScenario Scenario { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var (key, hash) = McpGuardApiKey.Generate();
        _authorization = "Bearer " + key;
        var settings = new Dictionary<string, string?> { ["McpGuard:Path"] = "/mcp" };
        if (Scenario != GateChainScenario.FrontDoorOnly)
        {
            foreach (var (name, value) in Guarded(hash))
            {
                if ((Scenario == GateChainScenario.AddAuthOnly && (name.StartsWith("RateLimits:", StringComparison.Ordinal) || name.EndsWith(":RateLimitPolicy", StringComparison.Ordinal)))
                    || (Scenario is GateChainScenario.AddAuthOnly or GateChainScenario.AddAuthAndLimits
                        && (name.StartsWith("Credits:", StringComparison.Ordinal) || name.StartsWith("Accounts:", StringComparison.Ordinal))))
                {
                    continue;
                }

                settings["McpGuard:" + name] = value;
            }
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddRouting(); // as in a web app: the admin API's authorization policy needs it
        services.AddMcpGuard(configuration.GetSection("McpGuard"));
        _services = services.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true });

        // What the host does at start: validate the options, open the ledger and seed the account.
        _ = _services.GetRequiredService<IOptions<McpGuardOptions>>().Value;
        foreach (var hosted in _services.GetServices<IHostedService>())
        {
            hosted.StartAsync(CancellationToken.None).GetAwaiter().GetResult();
        }

        _pipeline = _services.GetRequiredService<McpGuardPipeline>();
        var tool = Scenario switch
        {
            GateChainScenario.FreeEcho or GateChainScenario.FrontDoorOnly => "echo",
            GateChainScenario.MeteredSearch => "search",
            _ => "add",
        };
        _body = Encoding.UTF8.GetBytes(
            """{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"TOOL","arguments":{"a":2,"b":3},"_meta":{"progressToken":"tok-7"}}}"""
                .Replace("TOOL", tool, StringComparison.Ordinal));

        _contentLength = _body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Verify();
    }

    /// <summary>The context alone, built as <see cref="Guard"/> builds it, with the end-of-response step: the harness's share.</summary>
    [Benchmark(Baseline = true)]
    public int ContextOnly()
    {
        var context = NewContext(out var response);
        response.Finish();
        return context.Response.StatusCode;
    }

    /// <summary>One guarded request, without the endpoint.</summary>
    [Benchmark]
    public int Guard()
    {
        var context = NewContext(out var response);
        var run = _pipeline.InvokeAsync(context, Next);
        if (!run.IsCompletedSuccessfully)
        {
            run.GetAwaiter().GetResult();
        }

        response.Finish();
        return context.Response.StatusCode;
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _services.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _connection.Dispose();
    }

    private static IEnumerable<(string Name, string Value)> Guarded(string hash) =>
    [
        ("Auth:Resource", "http://127.0.0.1/mcp"),
        ("Auth:ApiKeys:Enabled", "true"),
        ("Auth:ApiKeys:Keys:0:Id", "bench-key"),
        ("Auth:ApiKeys:Keys:0:Hash", hash),
        ("Auth:ApiKeys:Keys:0:Account", Account),
        ("Auth:ApiKeys:Keys:0:Scopes:0", "tools:basic"),
        ("RateLimits:DefaultPolicy", "default"),
        ("RateLimits:Policies:default:Windows:0:Permits", Limit),
        ("RateLimits:Policies:default:Windows:0:Window", "00:01:00"),
        ("RateLimits:Policies:default:Windows:1:Permits", Limit),
        ("RateLimits:Policies:default:Windows:1:Window", "1.00:00:00"),
        ("RateLimits:Policies:add:PerTool", "true"),
        ("RateLimits:Policies:add:Windows:0:Permits", Limit),
        ("RateLimits:Policies:add:Windows:0:Window", "00:01:00"),
        ("Tools:add:Scopes:0", "tools:basic"),
        ("Tools:add:RateLimitPolicy", "add"),
        ("Tools:add:Price", "800"),
        ("Tools:echo:Scopes:0", "tools:basic"),
        ("Tools:echo:Price", "0"),
        ("Tools:search:Scopes:0", "tools:basic"),
        ("Tools:search:Price:PerUnitMicro", "2"),
        ("Tools:search:Price:MaxMicro", "20000"),
        ("Credits:Enabled", "true"),
        ("Store", "InMemory"),
        ("Accounts:" + Account + ":InitialBalance", "1000000000000000000"),
    ];

    /// <summary>Runs one request outside the measurement and checks it took the path this scenario means to measure.</summary>
    private void Verify()
    {
        var context = NewContext(out var response);
        _pipeline.InvokeAsync(context, Next).GetAwaiter().GetResult();
        var feature = context.Features.Get<McpGuardFeature>()
            ?? throw new InvalidOperationException("The guard did not run.");
        response.Finish();
        var charged = context.Response.Headers["McpGuard-Charge-Micro"].ToString();
        var expected = Scenario switch
        {
            GateChainScenario.PricedAdd => (Caller: true, Charge: "800", RateLimit: true),
            GateChainScenario.MeteredSearch => (Caller: true, Charge: "20000", RateLimit: true),
            GateChainScenario.FreeEcho => (Caller: true, Charge: "", RateLimit: true),
            GateChainScenario.AddAuthOnly => (Caller: true, Charge: "", RateLimit: false),
            GateChainScenario.AddAuthAndLimits => (Caller: true, Charge: "", RateLimit: true),
            _ => (Caller: false, Charge: "", RateLimit: false),
        };
        if (context.Response.StatusCode != StatusCodes.Status200OK
            || feature.Envelope is null
            || (feature.Caller is not null) != expected.Caller
            || charged != expected.Charge
            || context.Response.Headers.ContainsKey("RateLimit") != expected.RateLimit)
        {
            throw new InvalidOperationException(
                $"{Scenario}: status {context.Response.StatusCode}, caller {feature.Caller?.Account ?? "(none)"}, charge '{charged}', headers {string.Join(", ", context.Response.Headers.Keys)}.");
        }
    }

    private DefaultHttpContext NewContext(out ServerResponseFeature response)
    {
        var headers = new HeaderDictionary(8)
        {
            ["Content-Type"] = "application/json",
            ["Accept"] = "application/json, text/event-stream",
            ["Authorization"] = _authorization,
            ["MCP-Protocol-Version"] = "2025-06-18",
            ["Content-Length"] = _contentLength,
        };
        var features = new FeatureCollection(8);
        features.Set<IHttpRequestFeature>(new HttpRequestFeature
        {
            Method = HttpMethods.Post,
            Scheme = "http",
            Path = "/mcp",
            Protocol = "HTTP/1.1",
            Headers = headers,
            Body = new MemoryStream(_body, writable: false),
        });
        response = new ServerResponseFeature();
        features.Set<IHttpResponseFeature>(response);
        features.Set<IHttpResponseBodyFeature>(new StreamResponseBodyFeature(Stream.Null));
        features.Set<IHttpRequestLifetimeFeature>(new HttpRequestLifetimeFeature { RequestAborted = _connection.Token });
        // Each request gets its own service scope, as in a host (authentication handlers are per request); the scope is
        // disposed when the response finishes. The baseline pays for it too.
        var scope = _services.CreateScope();
        response.OnCompleted(static state =>
        {
            ((IDisposable)state).Dispose();
            return Task.CompletedTask;
        }, scope);
        return new DefaultHttpContext(features) { RequestServices = scope.ServiceProvider };
    }

    /// <summary>
    /// A response feature that, like a server, keeps the <c>OnStarting</c> and <c>OnCompleted</c> callbacks and runs
    /// them when the response is finished (the default <c>HttpResponseFeature</c> drops them). Response headers get
    /// their store up front, as a server's do.
    /// </summary>
    public sealed class ServerResponseFeature : IHttpResponseFeature
    {
        private readonly List<(Func<object, Task> Callback, object State)> _starting = new(2);
        private readonly List<(Func<object, Task> Callback, object State)> _completed = new(2);

        /// <inheritdoc/>
        public int StatusCode { get; set; } = StatusCodes.Status200OK;

        /// <inheritdoc/>
        public string? ReasonPhrase { get; set; }

        /// <inheritdoc/>
        public IHeaderDictionary Headers { get; set; } = new HeaderDictionary(8);

        /// <inheritdoc/>
        [Obsolete("Use IHttpResponseBodyFeature.Stream.")]
        public Stream Body { get; set; } = Stream.Null;

        /// <inheritdoc/>
        public bool HasStarted { get; private set; }

        /// <inheritdoc/>
        public void OnStarting(Func<object, Task> callback, object state) => _starting.Add((callback, state));

        /// <inheritdoc/>
        public void OnCompleted(Func<object, Task> callback, object state) => _completed.Add((callback, state));

        /// <summary>Starts the response (running <c>OnStarting</c> callbacks, last first) and completes it.</summary>
        public void Finish()
        {
            for (var i = _starting.Count - 1; i >= 0; i--)
            {
                _starting[i].Callback(_starting[i].State).GetAwaiter().GetResult();
            }

            HasStarted = true;
            for (var i = _completed.Count - 1; i >= 0; i--)
            {
                _completed[i].Callback(_completed[i].State).GetAwaiter().GetResult();
            }
        }
    }
}
