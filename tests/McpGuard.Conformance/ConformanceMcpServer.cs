using System.Collections.Concurrent;
using System.Text.Json;
using McpGuard.Conformance.Scenarios;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace McpGuard.Conformance;

/// <summary>
/// One conformance MCP server on <c>MapMcp("/mcp")</c>, stateful (sessions, for 2025-11-25 clients) or stateless
/// (every request on its own, as 2026-07-28 requires), bare or behind McpGuard.
/// </summary>
/// <remarks>
/// The SDK keeps one <c>HttpServerTransportOptions</c> per service provider, so the two lifecycles are two
/// applications, each on its own loopback port. Each guarded application has its own McpGuard, configured from
/// <c>guard.&lt;mode&gt;.json</c> (command-line arguments win over it).
/// </remarks>
internal static class ConformanceMcpServer
{
    public const string Path = "/mcp";

    public const string AdminPath = "/admin";

    private static readonly TimeSpan ListTimeToLive = TimeSpan.FromMinutes(5);
    private static readonly TimeSpan ReadTimeToLive = TimeSpan.FromMinutes(1);

    public static WebApplication Create(string[] args, bool stateless)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        var mode = GuardModes.Parse(builder.Configuration[GuardModes.Key]);
        if (mode != GuardMode.Off)
        {
            builder.Configuration.AddJsonFile($"guard.{mode.Name()}.json", optional: false, reloadOnChange: false);
            builder.Configuration.AddCommandLine(args);
        }

        builder.WebHost.UseUrls(builder.Configuration[stateless ? "Conformance:StatelessUrl" : "Conformance:StatefulUrl"] ?? "http://127.0.0.1:0");

        var guarded = mode != GuardMode.Off;
        if (guarded)
        {
            builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
            builder.Services.AddAuthorization(); // the admin API's policy
        }

        builder.Services.AddDistributedMemoryCache();
        var mcp = builder.Services
            .AddMcpServer(options => options.ServerInfo = new Implementation { Name = "mcpguard-conformance", Version = "1.0.0" })
            .WithHttpTransport(options => options.Stateless = stateless)
            .WithDistributedCacheEventStreamStore()
            .WithTools<ContentTools>()
            .WithTools<InteractionTools>()
            .WithTools<InputRequiredTools>()
            .WithTools<StatelessTools>()
            .WithTools<UrlElicitationTools>()
            .WithTools([ContentTools.JsonSchema202012()])
            .WithPrompts<ConformancePrompts>()
            .WithPrompts<InputRequiredPrompts>()
            .WithResources<ConformanceResources>()
            .WithCompleteHandler((_, _) => ValueTask.FromResult(new CompleteResult { Completion = new Completion { Values = [], Total = 0, HasMore = false } }))
            .WithSetLoggingLevelHandler(ConfirmLoggingLevelAsync)
            .WithRequestFilters(filters =>
            {
                // Caching hints (SEP-2549, scenario "caching"): every caller sees the same lists and contents.
                filters.AddListToolsFilter(next => async (request, cancellationToken) => Cacheable(await next(request, cancellationToken), ListTimeToLive));
                filters.AddListPromptsFilter(next => async (request, cancellationToken) => Cacheable(await next(request, cancellationToken), ListTimeToLive));
                filters.AddListResourcesFilter(next => async (request, cancellationToken) => Cacheable(await next(request, cancellationToken), ListTimeToLive));
                filters.AddListResourceTemplatesFilter(next => async (request, cancellationToken) => Cacheable(await next(request, cancellationToken), ListTimeToLive));
                filters.AddReadResourceFilter(next => async (request, cancellationToken) => Cacheable(await next(request, cancellationToken), ReadTimeToLive));
                if (!stateless)
                {
                    // server-sse-polling: once test_reconnection has its result, close the stream; the client resumes it with GET and Last-Event-ID.
                    filters.AddCallToolFilter(next => async (request, cancellationToken) =>
                    {
                        var result = await next(request, cancellationToken);
                        if (request.Params?.Name == "test_reconnection")
                        {
                            await request.EnablePollingAsync(TimeSpan.FromMilliseconds(500), cancellationToken);
                        }

                        return result;
                    });
                }
            });

        if (!stateless)
        {
            // Subscriptions need a session to belong to, so only the stateful server offers them.
            var subscriptions = new ResourceSubscriptions();
            mcp.WithSubscribeToResourcesHandler(subscriptions.SubscribeAsync).WithUnsubscribeFromResourcesHandler(subscriptions.UnsubscribeAsync);
        }

        if (guarded)
        {
            mcp.WithMcpGuard();
        }

        var app = builder.Build();
        if (guarded)
        {
            app.UseMcpGuard();
        }

        app.MapMcp(Path);
        if (guarded)
        {
            // Closed (403) unless --McpGuard:Admin:KeyHash is given: McpGuard's tests read the ledger through it.
            app.MapMcpGuardAdmin(AdminPath);
        }

        return app;
    }

    private static T Cacheable<T>(T result, TimeSpan timeToLive)
        where T : ICacheableResult
    {
        result.TimeToLive = timeToLive;
        result.CacheScope = CacheScope.Public;
        return result;
    }

    /// <summary>logging-set-level: accept the level and confirm it with a log notification at that level.</summary>
    private static async ValueTask<EmptyResult> ConfirmLoggingLevelAsync(RequestContext<SetLevelRequestParams> context, CancellationToken cancellationToken)
    {
        var level = context.Params?.Level ?? LoggingLevel.Info;
        await context.Server.SendNotificationAsync(
            NotificationMethods.LoggingMessageNotification,
            new LoggingMessageNotificationParams
            {
                Level = level,
                Logger = "mcpguard-conformance",
                Data = JsonSerializer.SerializeToElement($"Logging level set to {level}", McpJsonUtilities.DefaultOptions),
            },
            cancellationToken: cancellationToken);
        return new EmptyResult();
    }

    /// <summary>The resources each session watches (resources-subscribe, resources-unsubscribe).</summary>
    private sealed class ResourceSubscriptions
    {
        private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, byte>> _bySession = new(StringComparer.Ordinal);

        public ValueTask<EmptyResult> SubscribeAsync(RequestContext<SubscribeRequestParams> context, CancellationToken cancellationToken)
        {
            var session = context.Server.SessionId ?? throw new McpException("Subscriptions need a session.");
            _bySession.GetOrAdd(session, _ => new(StringComparer.Ordinal)).TryAdd(context.Params?.Uri ?? string.Empty, 0);
            return ValueTask.FromResult(new EmptyResult());
        }

        public ValueTask<EmptyResult> UnsubscribeAsync(RequestContext<UnsubscribeRequestParams> context, CancellationToken cancellationToken)
        {
            if (context.Server.SessionId is { } session && _bySession.TryGetValue(session, out var uris))
            {
                uris.TryRemove(context.Params?.Uri ?? string.Empty, out _);
            }

            return ValueTask.FromResult(new EmptyResult());
        }
    }
}
