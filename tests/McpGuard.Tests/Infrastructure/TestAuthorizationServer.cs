using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;
using ModelContextProtocol.Authentication;

namespace McpGuard.Tests.Infrastructure;

/// <summary>
/// A tiny real OAuth 2.1 authorization server on Kestrel at 127.0.0.1 on a free port, for driving real MCP
/// clients through discovery, authorization and token exchange:
/// <list type="bullet">
/// <item><c>GET /.well-known/oauth-authorization-server</c>: RFC 8414 metadata. The issuer is the base URL with no
/// trailing slash; the C# SDK requires it to equal, character for character, the <c>authorization_servers</c> entry
/// it came from (RFC 8414 §3.3), so list exactly <see cref="Issuer"/> in the resource's <c>AuthorizationServers</c>.</item>
/// <item><c>POST /register</c>: RFC 7591 dynamic registration of public clients (<c>token_endpoint_auth_method</c> <c>none</c>).</item>
/// <item><c>GET /authorize</c>: approves at once for <see cref="Subject"/> after checking client, redirect URI, PKCE (S256 only)
/// and the RFC 8707 <c>resource</c> (it must be one passed to <see cref="AllowResource"/>); redirects with
/// <c>code</c>, <c>state</c> and the RFC 9207 <c>iss</c>.</item>
/// <item><c>POST /token</c>: exchanges a code once, checking client, redirect URI, <c>code_verifier</c> and that
/// <c>resource</c> is the one authorized; issues an HS256 JWT with <c>iss</c> = <see cref="Issuer"/>,
/// <c>aud</c> = the resource, <c>sub</c> = <see cref="Subject"/> and <c>scope</c> = the scope that was authorized.</item>
/// </list>
/// Every request is recorded in <see cref="Requests"/>, every token in <see cref="IssuedTokens"/>.
/// </summary>
public sealed class TestAuthorizationServer : IAsyncDisposable
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private readonly WebApplication _app;
    private readonly SymmetricSecurityKey _key;
    private readonly ConcurrentQueue<AuthorizationServerRequest> _requests = new();
    private readonly ConcurrentQueue<IssuedToken> _tokens = new();
    private readonly ConcurrentDictionary<string, string[]> _clients = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, PendingCode> _codes = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, bool> _resources = new(StringComparer.Ordinal);
    private readonly HttpClient _browser = new(new SocketsHttpHandler { AllowAutoRedirect = false }) { Timeout = TimeSpan.FromSeconds(15) };
    private int _nextClient;

    private TestAuthorizationServer(WebApplication app, string signingKey)
    {
        _app = app;
        SigningKey = signingKey;
        _key = new SymmetricSecurityKey(Convert.FromBase64String(signingKey));
    }

    /// <summary>The issuer identifier: the base URL, e.g. <c>http://127.0.0.1:41234</c> (no trailing slash).</summary>
    public string Issuer { get; private set; } = "";

    /// <summary>The base64 HS256 key tokens are signed with (give it to McpGuard as <c>Jwt:SigningKey</c>).</summary>
    public string SigningKey { get; }

    /// <summary>The user every authorization is approved for (the token's <c>sub</c>).</summary>
    public string Subject { get; set; } = "alice";

    /// <summary>How long issued tokens live.</summary>
    public TimeSpan TokenLifetime { get; set; } = TimeSpan.FromMinutes(10);

    public IReadOnlyList<AuthorizationServerRequest> Requests => [.. _requests];

    public IReadOnlyList<IssuedToken> IssuedTokens => [.. _tokens];

    /// <summary>Requests to one path, in order.</summary>
    public IReadOnlyList<AuthorizationServerRequest> RequestsTo(string path) => [.. _requests.Where(r => r.Path == path)];

    /// <summary>Starts the server. <paramref name="signingKey"/> is base64 of at least 32 bytes; a random one by default.</summary>
    public static async Task<TestAuthorizationServer> StartAsync(string? signingKey = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, EnvironmentName = "Production" });
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new TestAuthorizationServer(app, signingKey ?? Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)));
        server.Map(app);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        server.Issuer = address.TrimEnd('/');
        return server;
    }

    /// <summary>Lets tokens be issued for <paramref name="resource"/> (an exact RFC 8707 resource indicator).</summary>
    public void AllowResource(string resource) => _resources[resource] = true;

    /// <summary>Registers a public client ahead of time (what <c>ClientOAuthOptions.ClientId</c> names).</summary>
    public void RegisterClient(string clientId, params string[] redirectUris) => _clients[clientId] = redirectUris;

    /// <summary>
    /// Plays the user's browser: GETs the authorization URL without following the redirect, checks that it goes
    /// to <paramref name="redirectUri"/>, and returns the <c>code</c>, <c>state</c> and <c>iss</c> it carries
    /// (what a real client reads off its redirect listener). Fails if the server answered anything but a redirect
    /// to the expected place.
    /// </summary>
    public async Task<AuthorizationResult?> FollowAuthorizationAsync(Uri authorizationUri, Uri redirectUri, CancellationToken cancellationToken)
    {
        using var response = await _browser.GetAsync(authorizationUri, cancellationToken);
        if (response.StatusCode != System.Net.HttpStatusCode.Redirect || response.Headers.Location is not { } location)
        {
            var body = await response.Content.ReadAsStringAsync(cancellationToken);
            throw new InvalidOperationException($"/authorize answered {(int)response.StatusCode} instead of a redirect: {body}");
        }

        var target = location.GetLeftPart(UriPartial.Path);
        if (target != redirectUri.GetLeftPart(UriPartial.Path))
        {
            throw new InvalidOperationException($"/authorize redirected to {target}, not to {redirectUri}.");
        }

        var query = QueryHelpers.ParseQuery(location.Query);
        if (query.TryGetValue("error", out var error))
        {
            throw new InvalidOperationException($"/authorize refused: {error} ({query.GetValueOrDefault("error_description")}).");
        }

        return new AuthorizationResult
        {
            Code = query.GetValueOrDefault("code").ToString(),
            State = query.GetValueOrDefault("state").ToString(),
            Iss = query.GetValueOrDefault("iss").ToString(),
        };
    }

    private void Map(WebApplication app)
    {
        app.Use(RecordAsync);
        app.MapGet("/.well-known/oauth-authorization-server", () => Results.Json(
            new Dictionary<string, object>
            {
                ["issuer"] = Issuer,
                ["authorization_endpoint"] = Issuer + "/authorize",
                ["token_endpoint"] = Issuer + "/token",
                ["registration_endpoint"] = Issuer + "/register",
                ["response_types_supported"] = new[] { "code" },
                ["grant_types_supported"] = new[] { "authorization_code" },
                ["code_challenge_methods_supported"] = new[] { "S256" },
                ["token_endpoint_auth_methods_supported"] = new[] { "none" },
                ["authorization_response_iss_parameter_supported"] = true,
            }));
        app.MapPost("/register", RegisterAsync);
        app.MapGet("/authorize", Authorize);
        app.MapPost("/token", TokenAsync);
    }

    private async Task RecordAsync(HttpContext context, RequestDelegate next)
    {
        var request = context.Request;
        Dictionary<string, string> parameters;
        string? body = null;
        if (request.HasFormContentType)
        {
            var form = await request.ReadFormAsync(context.RequestAborted);
            parameters = form.ToDictionary(p => p.Key, p => p.Value.ToString(), StringComparer.Ordinal);
        }
        else
        {
            parameters = request.Query.ToDictionary(p => p.Key, p => p.Value.ToString(), StringComparer.Ordinal);
            if (request.ContentLength > 0 || request.Headers.TransferEncoding.Count > 0)
            {
                request.EnableBuffering();
                using var reader = new StreamReader(request.Body, Encoding.UTF8, leaveOpen: true);
                body = await reader.ReadToEndAsync(context.RequestAborted);
                request.Body.Position = 0;
            }
        }

        // Recorded as the response starts, before the client can read it (see OAuthResourceServer's recording).
        var response = context.Response;
        response.OnStarting(() =>
        {
            _requests.Enqueue(new AuthorizationServerRequest(request.Method, request.Path.Value ?? "", parameters, body, response.StatusCode));
            return Task.CompletedTask;
        });
        await next(context);
    }

    private async Task<IResult> RegisterAsync(HttpRequest request)
    {
        RegistrationRequest? registration;
        try
        {
            registration = await JsonSerializer.DeserializeAsync<RegistrationRequest>(request.Body, Json, request.HttpContext.RequestAborted);
        }
        catch (JsonException)
        {
            return OAuthError("invalid_client_metadata", "The body is not JSON client metadata.");
        }

        var redirectUris = registration?.RedirectUris ?? [];
        if (redirectUris.Length == 0 || redirectUris.Any(u => !Uri.TryCreate(u, UriKind.Absolute, out var uri) || uri.Fragment.Length > 0))
        {
            return OAuthError("invalid_redirect_uri", "redirect_uris must be absolute URIs without fragments.");
        }

        var clientId = $"dcr-client-{Interlocked.Increment(ref _nextClient)}";
        _clients[clientId] = redirectUris;
        return Results.Json(
            new Dictionary<string, object?>
            {
                ["client_id"] = clientId,
                ["client_id_issued_at"] = TimeProvider.System.GetUtcNow().ToUnixTimeSeconds(),
                ["client_name"] = registration!.ClientName,
                ["redirect_uris"] = redirectUris,
                ["grant_types"] = new[] { "authorization_code" },
                ["response_types"] = new[] { "code" },
                ["token_endpoint_auth_method"] = "none",
            },
            statusCode: StatusCodes.Status201Created);
    }

    private IResult Authorize(HttpRequest request)
    {
        var query = request.Query;
        string clientId = query["client_id"].ToString(), redirectUri = query["redirect_uri"].ToString(), state = query["state"].ToString();

        // Without a known client and one of its redirect URIs there is nowhere safe to send an error: answer here (RFC 6749 §4.1.2.1).
        if (!_clients.TryGetValue(clientId, out var registered))
        {
            return OAuthError("invalid_client", $"Unknown client_id '{clientId}'.");
        }

        if (!registered.Contains(redirectUri, StringComparer.Ordinal))
        {
            return OAuthError("invalid_request", $"redirect_uri '{redirectUri}' is not registered for the client.");
        }

        string? refusal = null, description = null;
        if (query["response_type"] != "code")
        {
            (refusal, description) = ("unsupported_response_type", "Only response_type=code is supported.");
        }
        else if (query["code_challenge_method"] != "S256" || query["code_challenge"].ToString() is not { Length: 43 })
        {
            (refusal, description) = ("invalid_request", "PKCE with code_challenge_method=S256 is required.");
        }
        else if (query["resource"].Count != 1 || !_resources.ContainsKey(query["resource"].ToString()))
        {
            (refusal, description) = ("invalid_target", "resource must name exactly one resource this server issues tokens for.");
        }

        var parameters = new Dictionary<string, string?> { ["state"] = state.Length > 0 ? state : null, ["iss"] = Issuer };
        if (refusal is not null)
        {
            parameters["error"] = refusal;
            parameters["error_description"] = description;
        }
        else
        {
            var code = Base64UrlEncoder.Encode(RandomNumberGenerator.GetBytes(32));
            _codes[code] = new PendingCode(clientId, redirectUri, query["code_challenge"].ToString(), query["resource"].ToString(), query["scope"].ToString());
            parameters["code"] = code;
        }

        return Results.Redirect(QueryHelpers.AddQueryString(redirectUri, parameters.Where(p => p.Value is not null)));
    }

    private async Task<IResult> TokenAsync(HttpRequest request, HttpResponse response)
    {
        var form = await request.ReadFormAsync(request.HttpContext.RequestAborted);
        response.Headers.CacheControl = "no-store";
        if (form["grant_type"] != "authorization_code")
        {
            return OAuthError("unsupported_grant_type", "Only authorization_code is supported.");
        }

        if (!StringValues.IsNullOrEmpty(form["client_secret"]))
        {
            return OAuthError("invalid_client", "Clients here are public (token_endpoint_auth_method none): send no client_secret.", StatusCodes.Status401Unauthorized);
        }

        // A code is single-use: it is gone whether or not the exchange succeeds.
        if (!_codes.TryRemove(form["code"].ToString(), out var pending))
        {
            return OAuthError("invalid_grant", "Unknown or already used code.");
        }

        if (form["client_id"] != pending.ClientId || form["redirect_uri"] != pending.RedirectUri)
        {
            return OAuthError("invalid_grant", "client_id or redirect_uri differs from the authorization request.");
        }

        var verifier = form["code_verifier"].ToString();
        if (verifier.Length is < 43 or > 128
            || Base64UrlEncoder.Encode(SHA256.HashData(Encoding.ASCII.GetBytes(verifier))) != pending.CodeChallenge)
        {
            return OAuthError("invalid_grant", "code_verifier does not match the code_challenge.");
        }

        if (form["resource"] != pending.Resource)
        {
            return OAuthError("invalid_target", "resource differs from the one authorized.");
        }

        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        var claims = new Dictionary<string, object> { ["sub"] = Subject, ["client_id"] = pending.ClientId };
        if (pending.Scope.Length > 0)
        {
            claims["scope"] = pending.Scope;
        }

        var accessToken = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = pending.Resource,
            Claims = claims,
            IssuedAt = now,
            NotBefore = now,
            Expires = now + TokenLifetime,
            SigningCredentials = new SigningCredentials(_key, SecurityAlgorithms.HmacSha256),
        });
        _tokens.Enqueue(new IssuedToken(accessToken, pending.ClientId, pending.Resource, pending.Scope, Subject));
        return Results.Json(new Dictionary<string, object>
        {
            ["access_token"] = accessToken,
            ["token_type"] = "Bearer",
            ["expires_in"] = (int)TokenLifetime.TotalSeconds,
            ["scope"] = pending.Scope,
        });
    }

    private static IResult OAuthError(string error, string description, int status = StatusCodes.Status400BadRequest) =>
        Results.Json(new Dictionary<string, string> { ["error"] = error, ["error_description"] = description }, statusCode: status);

    public async ValueTask DisposeAsync()
    {
        _browser.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private sealed record PendingCode(string ClientId, string RedirectUri, string CodeChallenge, string Resource, string Scope);

    private sealed class RegistrationRequest
    {
        [System.Text.Json.Serialization.JsonPropertyName("redirect_uris")]
        public string[]? RedirectUris { get; set; }

        [System.Text.Json.Serialization.JsonPropertyName("client_name")]
        public string? ClientName { get; set; }
    }
}

/// <summary>
/// The sample as an OAuth protected resource on a real loopback port, with <c>Resource</c> derived from its real base
/// URL (the port is picked before the host starts, since the canonical URI is configuration). Given a
/// <see cref="TestAuthorizationServer"/>, it also trusts it: JWTs on, the AS as its only authorization server, its
/// issuer and key. Every request the host receives is recorded before McpGuard sees it.
/// </summary>
public static class OAuthResourceServer
{
    /// <summary>Starts the sample; <paramref name="resource"/> maps the base URL (<c>http://127.0.0.1:port</c>) to the configured Resource, by default <c>base/mcp</c>.</summary>
    public static async Task<(GuardedHost Host, ResourceRequestLog Log, string Resource)> StartAsync(
        TestAuthorizationServer? authorizationServer,
        Func<string, string>? resource = null)
    {
        for (var attempt = 1; ; attempt++)
        {
            var port = FreeLoopbackPort();
            var baseUrl = $"http://127.0.0.1:{port}";
            var canonical = resource?.Invoke(baseUrl) ?? baseUrl + "/mcp";
            var configuration = new Dictionary<string, string?> { ["McpGuard:Auth:Resource"] = canonical };
            if (authorizationServer is not null)
            {
                authorizationServer.AllowResource(canonical);
                configuration["McpGuard:Auth:AuthorizationServers:0"] = authorizationServer.Issuer;
                configuration["McpGuard:Auth:Jwt:Enabled"] = "true";
                configuration["McpGuard:Auth:Jwt:Issuer"] = authorizationServer.Issuer;
                configuration["McpGuard:Auth:Jwt:SigningKey"] = authorizationServer.SigningKey;
            }

            var log = new ResourceRequestLog();
            try
            {
                var host = await GuardedHost.StartSampleAsync(configuration, builder =>
                {
                    builder.UseUrls(baseUrl);
                    builder.ConfigureServices(services => services.AddSingleton<IStartupFilter>(new RecordingStartupFilter(log)));
                });
                Assert.Equal(new Uri(baseUrl + "/"), host.BaseAddress);
                return (host, log, canonical);
            }
            catch (IOException ex) when (attempt < 3 && ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
            {
                // Another process took the port between picking and binding; pick again.
            }
        }
    }

    private static int FreeLoopbackPort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    private sealed class RecordingStartupFilter(ResourceRequestLog log) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((context, nextMiddleware) =>
            {
                // The request as it arrived (McpGuard removes the credential before the endpoint runs).
                var request = context.Request;
                var entry = (request.Method, Host: request.Host.Value ?? "", Path: request.Path.Value ?? "", McpMethod: request.Headers["Mcp-Method"].ToString(), Authorization: request.Headers.Authorization.ToString());
                var response = context.Response;

                // Recorded as the response starts, before the client can read a byte of it. Not after next(): the client
                // may have the whole answer (a flushed error body, the SSE message answering its request) while this
                // request's middleware has yet to return, so its next request, or the test's assertions, would race the entry.
                // Registered first, this callback runs last: it sees the status and headers every inner callback set.
                response.OnStarting(() =>
                {
                    log.Add(new ResourceRequest(entry.Method, entry.Host, entry.Path, entry.McpMethod, entry.Authorization, response.StatusCode, response.Headers.WWWAuthenticate.ToString()));
                    return Task.CompletedTask;
                });
                return nextMiddleware(context);
            });
            next(app);
        };
    }
}

/// <summary>
/// What the resource server received, in the order its responses started; an entry is in the log before the client
/// can read any of its response, so once a client call returns, the log holds every request that call made.
/// </summary>
public sealed class ResourceRequestLog
{
    private readonly ConcurrentQueue<ResourceRequest> _entries = new();

    public IReadOnlyList<ResourceRequest> Entries => [.. _entries];

    internal void Add(ResourceRequest entry) => _entries.Enqueue(entry);
}

/// <summary>
/// One request the resource server answered: its <c>Mcp-Method</c> header (empty when the client sent none), the
/// Authorization header it arrived with (before McpGuard removed it), the status and the challenge.
/// </summary>
public sealed record ResourceRequest(string Method, string Host, string Path, string McpMethod, string Authorization, int StatusCode, string WwwAuthenticate);

/// <summary>One request the authorization server answered: its query or form parameters, any other body, and the status.</summary>
public sealed record AuthorizationServerRequest(string Method, string Path, IReadOnlyDictionary<string, string> Parameters, string? Body, int StatusCode);

/// <summary>An access token the authorization server issued, with what it was issued for.</summary>
public sealed record IssuedToken(string AccessToken, string ClientId, string Resource, string Scope, string Subject);
