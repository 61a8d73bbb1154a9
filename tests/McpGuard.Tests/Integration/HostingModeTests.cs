using System.Net;
using System.Text;
using McpGuard.Protocol;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace McpGuard.Tests.Integration;

/// <summary>The two ways to put the guard in front of an endpoint, <c>UseMcpGuard()</c> and <c>RequireMcpGuard()</c>, and what each leaves alone.</summary>
public sealed class HostingModeTests
{
    private const string Ping = """{"jsonrpc":"2.0","id":1,"method":"ping"}""";
    private const string ParseError = "Parse error: the request body is not valid JSON.";

    /// <summary>An endpoint that answers with what it received, so a test can tell it ran and saw the body.</summary>
    private static async Task Answer(HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
        var body = await reader.ReadToEndAsync(context.RequestAborted);
        context.Response.ContentType = "text/plain";
        await context.Response.WriteAsync($"{context.Request.Method} {context.Request.Path}: {body}");
    }

    // ---- RequireMcpGuard ----

    [Fact]
    public async Task RequireMcpGuard_guards_its_endpoint_and_leaves_the_others_alone()
    {
        await using var host = await GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app =>
            {
                app.MapPost("/mcp", Answer).RequireMcpGuard();
                app.MapPost("/other", Answer);
            });

        using var refused = await host.PostMcpAsync("{");
        using var passed = await host.PostMcpAsync(Ping);
        using var other = await host.PostMcpAsync("{", path: "/other");

        await WireAssert.JsonRpcErrorAsync(refused, HttpStatusCode.BadRequest, -32700, ParseError, "parse_error", id: null);
        Assert.Equal(HttpStatusCode.OK, passed.StatusCode);
        Assert.Equal($"POST /mcp: {Ping}", await passed.Content.ReadAsStringAsync());
        WireAssert.IsGeneratedRequestId(WireAssert.RequestId(passed));
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        Assert.Equal("POST /other: {", await other.Content.ReadAsStringAsync());
        Assert.False(other.Headers.Contains("X-Request-Id"));
    }

    [Fact]
    public async Task RequireMcpGuard_ignores_the_configured_path()
    {
        await using var host = await GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app =>
            {
                app.MapPost("/rpc", Answer).RequireMcpGuard();
                app.MapPost("/mcp", Answer);
            });

        using var guarded = await host.PostMcpAsync("{", path: "/rpc");
        using var unguarded = await host.PostMcpAsync("{", path: "/mcp");

        await WireAssert.JsonRpcErrorAsync(guarded, HttpStatusCode.BadRequest, -32700, ParseError, "parse_error", id: null);
        Assert.Equal(HttpStatusCode.OK, unguarded.StatusCode);
        Assert.Equal("POST /mcp: {", await unguarded.Content.ReadAsStringAsync());
        Assert.False(unguarded.Headers.Contains("X-Request-Id"));
    }

    [Fact]
    public async Task RequireMcpGuard_on_a_group_guards_every_endpoint_of_the_group()
    {
        await using var host = await GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app =>
            {
                var group = app.MapGroup("/tenants/{tenant}").RequireMcpGuard();
                group.MapPost("/mcp", Answer);
            });

        using var refused = await host.PostMcpAsync(Ping, contentType: "text/plain", path: "/tenants/acme/mcp");
        using var passed = await host.PostMcpAsync(Ping, path: "/tenants/acme/mcp");

        await WireAssert.JsonRpcErrorAsync(refused, HttpStatusCode.UnsupportedMediaType, -32600,
            "Unsupported Media Type: send the body as Content-Type: application/json.", "unsupported_media_type", id: null);
        Assert.Equal(HttpStatusCode.OK, passed.StatusCode);
        Assert.Equal($"POST /tenants/acme/mcp: {Ping}", await passed.Content.ReadAsStringAsync());
    }

    // ---- UseMcpGuard ----

    [Theory]
    [InlineData("/mcp")]
    [InlineData("/mcp/")]
    [InlineData("/MCP")]
    public async Task UseMcpGuard_guards_the_configured_path(string path)
    {
        await using var host = await StartUseMcpGuardAsync();

        using var refused = await host.PostMcpAsync("{", path: path);
        using var passed = await host.PostMcpAsync(Ping, path: path);

        await WireAssert.JsonRpcErrorAsync(refused, HttpStatusCode.BadRequest, -32700, ParseError, "parse_error", id: null);
        Assert.Equal(HttpStatusCode.OK, passed.StatusCode);
        Assert.Equal($"POST {path}: {Ping}", await passed.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("/other")]
    [InlineData("/mcpx")]
    [InlineData("/mcp/sub")]
    public async Task UseMcpGuard_leaves_other_paths_alone(string path)
    {
        await using var host = await StartUseMcpGuardAsync();

        using var response = await host.PostMcpAsync("{", path: path);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal($"POST {path}: {{", await response.Content.ReadAsStringAsync());
        Assert.False(response.Headers.Contains("X-Request-Id"));
    }

    [Fact]
    public async Task UseMcpGuard_follows_a_configured_path()
    {
        await using var host = await GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app =>
            {
                app.UseMcpGuard();
                app.MapPost("/api/mcp", Answer);
                app.MapPost("/mcp", Answer);
            },
            new Dictionary<string, string?> { ["McpGuard:Path"] = "/api/mcp/" });

        using var guarded = await host.PostMcpAsync("{", path: "/api/mcp");
        using var unguarded = await host.PostMcpAsync("{", path: "/mcp");

        await WireAssert.JsonRpcErrorAsync(guarded, HttpStatusCode.BadRequest, -32700, ParseError, "parse_error", id: null);
        Assert.Equal(HttpStatusCode.OK, unguarded.StatusCode);
        Assert.Equal("POST /mcp: {", await unguarded.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task The_apps_own_get_at_the_path_passes_and_other_methods_get_405_listing_them()
    {
        await using var host = await GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app =>
            {
                app.UseMcpGuard();
                app.MapPost("/mcp", Answer);
                app.MapGet("/mcp", Answer);
            });

        using var get = await host.Client.GetAsync(new Uri("/mcp", UriKind.Relative));
        using var putRequest = new HttpRequestMessage(HttpMethod.Put, "/mcp") { Content = new StringContent(Ping, Encoding.UTF8, "application/json") };
        using var put = await host.Client.SendAsync(putRequest);
        using var delete = await host.Client.DeleteAsync(new Uri("/mcp", UriKind.Relative));

        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.Equal("GET /mcp: ", await get.Content.ReadAsStringAsync());
        WireAssert.IsGeneratedRequestId(WireAssert.RequestId(get));
        foreach (var response in new[] { put, delete })
        {
            await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.MethodNotAllowed, -32600,
                "Method Not Allowed: this endpoint accepts GET, POST.", "method_not_allowed", id: null);
            Assert.Equal(["GET", "POST"], response.Content.Headers.Allow);
        }
    }

    [Fact]
    public async Task A_get_through_the_guard_still_needs_an_allowed_origin()
    {
        await using var host = await GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app =>
            {
                app.UseMcpGuard();
                app.MapGet("/mcp", Answer);
            },
            new Dictionary<string, string?> { ["McpGuard:AllowedOrigins:0"] = "https://app.example.com" });
        using var request = new HttpRequestMessage(HttpMethod.Get, "/mcp");
        request.Headers.TryAddWithoutValidation("Origin", "https://evil.example.com");

        using var refused = await host.Client.SendAsync(request);

        await WireAssert.JsonRpcErrorAsync(refused, HttpStatusCode.Forbidden, -31105,
            "Origin not allowed: this server does not accept requests from that web origin.", "origin_not_allowed", id: null);
    }

    // ---- Missing AddMcpGuard ----

    [Fact]
    public async Task UseMcpGuard_without_AddMcpGuard_throws_naming_AddMcpGuard()
    {
        var builder = WebApplication.CreateBuilder();
        await using var app = builder.Build();

        var exception = Assert.Throws<InvalidOperationException>(() => app.UseMcpGuard());

        Assert.Equal(
            "McpGuard's services are not registered. Call builder.Services.AddMcpGuard() in Program.cs before building the app.",
            exception.Message);
    }

    [Fact]
    public async Task RequireMcpGuard_without_AddMcpGuard_fails_when_the_endpoints_are_built()
    {
        await using var host = await GuardedHost.StartAsync(_ => { }, app => app.MapPost("/mcp", Answer).RequireMcpGuard());

        var exception = Assert.Throws<InvalidOperationException>(() => host.Services.GetRequiredService<EndpointDataSource>().Endpoints);

        Assert.Equal(
            "McpGuard's services are not registered. Call builder.Services.AddMcpGuard() in Program.cs before building the app.",
            exception.Message);
    }

    [Fact]
    public async Task RequireMcpGuard_without_AddMcpGuard_fails_the_first_request_with_the_same_message()
    {
        await using var host = await GuardedHost.StartAsync(_ => { }, app => app.MapPost("/mcp", Answer).RequireMcpGuard());

        using var response = await host.PostMcpAsync(Ping);

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Empty(await response.Content.ReadAsStringAsync());
        var logged = Assert.Single(host.Logs.Entries, e => e.Level >= LogLevel.Error);
        var exception = Assert.IsType<InvalidOperationException>(logged.Exception);
        Assert.StartsWith("McpGuard's services are not registered. Call builder.Services.AddMcpGuard(", exception.Message, StringComparison.Ordinal);
    }

    // ---- Guarded twice ----

    [Fact]
    public async Task Guarding_twice_runs_the_front_door_once()
    {
        McpGuardFeature? seenBeforeEndpoint = null;
        McpGuardFeature? seenByEndpoint = null;
        Stream? bodyBeforeEndpoint = null;
        Stream? bodyAtEndpoint = null;
        await using var host = await GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app =>
            {
                app.UseMcpGuard();
                app.Use((context, next) =>
                {
                    seenBeforeEndpoint = context.Features.Get<McpGuardFeature>();
                    bodyBeforeEndpoint = context.Request.Body;
                    return next(context);
                });
                app.MapPost("/mcp", context =>
                {
                    seenByEndpoint = context.Features.Get<McpGuardFeature>();
                    bodyAtEndpoint = context.Request.Body;
                    return Answer(context);
                }).RequireMcpGuard();
            });

        using var passed = await host.PostMcpAsync(Ping, headers: new Dictionary<string, string> { ["X-Request-Id"] = "twice-1" });
        using var refused = await host.PostMcpAsync("{");

        Assert.Equal(HttpStatusCode.OK, passed.StatusCode);
        Assert.Equal($"POST /mcp: {Ping}", await passed.Content.ReadAsStringAsync());
        Assert.Equal("twice-1", WireAssert.RequestId(passed));
        Assert.NotNull(seenBeforeEndpoint);
        Assert.Same(seenBeforeEndpoint, seenByEndpoint);
        Assert.Same(bodyBeforeEndpoint, bodyAtEndpoint);
        Assert.Equal("twice-1", seenByEndpoint!.RequestId);
        var requestId = await WireAssert.JsonRpcErrorAsync(refused, HttpStatusCode.BadRequest, -32700, ParseError, "parse_error", id: null);
        Assert.Single(host.Logs.Entries, e => e.EventId.Id == 2001 && e.Message.Contains(requestId, StringComparison.Ordinal));
    }

    private static Task<GuardedHost> StartUseMcpGuardAsync() =>
        GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app =>
            {
                app.UseMcpGuard();
                app.MapPost("/mcp", Answer);
                app.MapPost("/other", Answer);
                app.MapPost("/mcpx", Answer);
                app.MapPost("/mcp/sub", Answer);
            });
}
