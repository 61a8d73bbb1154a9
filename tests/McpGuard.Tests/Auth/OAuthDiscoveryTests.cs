using McpGuard.Tests.Infrastructure;
using Microsoft.IdentityModel.JsonWebTokens;
using ModelContextProtocol;
using ModelContextProtocol.Authentication;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;

namespace McpGuard.Tests.Auth;

/// <summary>
/// The C# SDK's OAuth client (ModelContextProtocol 2.4.0, <c>ClientOAuthProvider</c>) over real HTTP: from McpGuard's
/// 401 challenge through RFC 9728 metadata to a real authorization server and back with a JWT, the resource check
/// that makes the client refuse metadata naming another server, and step-up after a 403 <c>insufficient_scope</c>.
/// </summary>
public sealed class OAuthDiscoveryTests
{
    private const string AllScopes = "tools:basic tools:premium";
    private const string PreRegisteredClient = "mcpguard-tests";

    /// <summary>Never contacted: the authorization callback reads the redirect's Location instead of following it.</summary>
    private static readonly Uri RedirectUri = new("http://127.0.0.1/oauth/callback");

    [Fact]
    public async Task Client_follows_our_challenge_to_the_authorization_server_and_calls_tools_with_the_token()
    {
        await using var authorizationServer = await TestAuthorizationServer.StartAsync();
        var (host, log, resource) = await OAuthResourceServer.StartAsync(authorizationServer);
        await using var _ = host;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        await using var client = await McpClient.CreateAsync(OAuthTransport(host, authorizationServer), cancellationToken: timeout.Token);
        var tools = await client.ListToolsAsync(cancellationToken: timeout.Token);
        var result = await client.CallToolAsync("echo", new Dictionary<string, object?> { ["message"] = "hello over OAuth" }, cancellationToken: timeout.Token);

        Assert.Equal(["add", "echo", "fail", "premium_report", "search", "slow"], tools.Select(t => t.Name).Order());
        Assert.NotEqual(true, result.IsError);
        Assert.Equal("hello over OAuth", Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text);

        // The authorization server named in our metadata: discovery, registration, authorization and token, all for our canonical URI.
        Assert.Equal(
            ["GET /.well-known/oauth-authorization-server 200", "POST /register 201", "GET /authorize 302", "POST /token 200"],
            authorizationServer.Requests.Select(r => $"{r.Method} {r.Path} {r.StatusCode}"));
        var authorize = authorizationServer.RequestsTo("/authorize")[0].Parameters;
        Assert.Equal(resource, authorize["resource"]);
        Assert.Equal(AllScopes, authorize["scope"]);
        Assert.Equal("S256", authorize["code_challenge_method"]);
        Assert.Equal("code", authorize["response_type"]);
        Assert.Equal("dcr-client-1", authorize["client_id"]);
        Assert.Equal(RedirectUri.ToString(), authorize["redirect_uri"]);
        var token = authorizationServer.RequestsTo("/token")[0].Parameters;
        Assert.Equal(resource, token["resource"]);
        Assert.Equal("authorization_code", token["grant_type"]);
        Assert.Equal("dcr-client-1", token["client_id"]);

        var issued = Assert.Single(authorizationServer.IssuedTokens);
        var jwt = new JsonWebToken(issued.AccessToken);
        Assert.Equal(authorizationServer.Issuer, jwt.Issuer);
        Assert.Equal([resource], jwt.Audiences);
        Assert.Equal("alice", jwt.Subject);
        Assert.Equal(AllScopes, jwt.GetClaim("scope").Value);

        // Our side: the first request got the 401 challenge, the client read our metadata once, then every request
        // carried the token. (Protocol 2026-07-28 has no initialize handshake: the client opens with server/discover.)
        const string Metadata = "/.well-known/oauth-protected-resource/mcp";
        var bearer = $"Bearer {issued.AccessToken}";
        Assert.Equal(
            [
                ("POST", "/mcp", "server/discover", "", 401),
                ("GET", Metadata, "", "", 200),
                ("POST", "/mcp", "server/discover", bearer, 200),
                ("POST", "/mcp", "tools/list", bearer, 200),
                ("POST", "/mcp", "tools/call", bearer, 200),
            ],
            log.Entries.Select(r => (r.Method, r.Path, r.McpMethod, r.Authorization, r.StatusCode)));
        var metadataUrl = $"{host.BaseAddress.GetLeftPart(UriPartial.Authority)}{Metadata}";
        Assert.Equal($"Bearer resource_metadata=\"{metadataUrl}\", scope=\"{AllScopes}\"", log.Entries[0].WwwAuthenticate);
    }

    [Theory]
    [InlineData("localhost", "/mcp")]
    [InlineData("127.0.0.1", "/other")]
    public async Task Client_refuses_metadata_whose_resource_is_not_the_server_it_connected_to(string resourceHost, string resourcePath)
    {
        await using var authorizationServer = await TestAuthorizationServer.StartAsync();
        var (host, log, resource) = await OAuthResourceServer.StartAsync(
            authorizationServer,
            baseUrl => $"http://{resourceHost}:{new Uri(baseUrl).Port}{resourcePath}");
        await using var _ = host;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        var exception = await Assert.ThrowsAsync<McpException>(
            async () => await McpClient.CreateAsync(OAuthTransport(host, authorizationServer), cancellationToken: timeout.Token));

        Assert.Equal($"Resource URI in metadata ({resource}) does not match the expected URI ({host.McpEndpoint})", exception.Message);

        // The client read the metadata our challenge pointed at (on the resource's own authority), then stopped:
        // no authorization server contact, no second attempt at /mcp.
        var resourceAuthority = new Uri(resource).Authority;
        var metadataPath = "/.well-known/oauth-protected-resource" + resourcePath;
        Assert.Equal(
            [("POST", "/mcp", host.BaseAddress.Authority, 401), ("GET", metadataPath, resourceAuthority, 200)],
            log.Entries.Select(r => (r.Method, r.Path, r.Host, r.StatusCode)));
        Assert.Equal(
            $"Bearer resource_metadata=\"http://{resourceAuthority}{metadataPath}\", scope=\"{AllScopes}\"",
            log.Entries[0].WwwAuthenticate);
        Assert.Empty(authorizationServer.Requests);
    }

    [Fact]
    public async Task Client_steps_up_to_tools_premium_after_our_insufficient_scope_challenge()
    {
        await using var authorizationServer = await TestAuthorizationServer.StartAsync();
        authorizationServer.RegisterClient(PreRegisteredClient, RedirectUri.ToString());
        var (host, log, resource) = await OAuthResourceServer.StartAsync(authorizationServer);
        await using var _ = host;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        // A least-privilege client: it first asks only for tools:basic, then takes whatever the SDK proposes on step-up.
        var proposals = new List<string?>();
        var transport = OAuthTransport(host, authorizationServer, oauth =>
        {
            oauth.ClientId = PreRegisteredClient;
            oauth.DynamicClientRegistration = null;
            oauth.ScopeSelector = proposed =>
            {
                proposals.Add(proposed is null ? null : string.Join(' ', proposed));
                return proposals.Count == 1 ? ["tools:basic"] : proposed;
            };
        });

        await using var client = await McpClient.CreateAsync(transport, cancellationToken: timeout.Token);
        var basicTools = await client.ListToolsAsync(cancellationToken: timeout.Token);
        var report = await client.CallToolAsync("premium_report", new Dictionary<string, object?> { ["topic"] = "step-up" }, cancellationToken: timeout.Token);
        var premiumTools = await client.ListToolsAsync(cancellationToken: timeout.Token);

        Assert.Equal(["add", "echo", "fail", "search", "slow"], basicTools.Select(t => t.Name).Order());
        Assert.NotEqual(true, report.IsError);
        Assert.Equal(
            "Premium report on step-up: demand is steady, risks are known, and the outlook is fair.",
            Assert.IsType<TextContentBlock>(Assert.Single(report.Content)).Text);
        Assert.Equal(["add", "echo", "fail", "premium_report", "search", "slow"], premiumTools.Select(t => t.Name).Order());

        // The SDK proposed every scope from our 401, then the union with the scope our 403 named.
        Assert.Equal([AllScopes, AllScopes], proposals);
        Assert.Equal(
            [("tools:basic", resource, PreRegisteredClient), (AllScopes, resource, PreRegisteredClient)],
            authorizationServer.RequestsTo("/authorize").Select(r => (r.Parameters["scope"], r.Parameters["resource"], r.Parameters["client_id"])));
        Assert.Empty(authorizationServer.RequestsTo("/register"));
        var tokens = authorizationServer.IssuedTokens;
        Assert.Equal(["tools:basic", AllScopes], tokens.Select(t => t.Scope));

        // Our side: the premium call with the basic token got the step-up challenge; the client re-read our metadata,
        // and the same call came back with the new token.
        const string Metadata = "/.well-known/oauth-protected-resource/mcp";
        string basic = $"Bearer {tokens[0].AccessToken}", premium = $"Bearer {tokens[1].AccessToken}";
        Assert.Equal(
            [
                ("POST", "/mcp", "server/discover", "", 401),
                ("GET", Metadata, "", "", 200),
                ("POST", "/mcp", "server/discover", basic, 200),
                ("POST", "/mcp", "tools/list", basic, 200),
                ("POST", "/mcp", "tools/call", basic, 403),
                ("GET", Metadata, "", "", 200),
                ("POST", "/mcp", "tools/call", premium, 200),
                ("POST", "/mcp", "tools/list", premium, 200),
            ],
            log.Entries.Select(r => (r.Method, r.Path, r.McpMethod, r.Authorization, r.StatusCode)));
        var metadataUrl = $"{host.BaseAddress.GetLeftPart(UriPartial.Authority)}{Metadata}";
        Assert.Equal($"Bearer error=\"insufficient_scope\", scope=\"tools:premium\", resource_metadata=\"{metadataUrl}\"", log.Entries[4].WwwAuthenticate);
    }

    private static HttpClientTransport OAuthTransport(GuardedHost host, TestAuthorizationServer authorizationServer, Action<ClientOAuthOptions>? configure = null)
    {
        var oauth = new ClientOAuthOptions
        {
            RedirectUri = RedirectUri,
            // The non-obsolete callback: the SDK then checks state and the RFC 9207 iss the server returns.
            AuthorizationCallbackHandler = (context, cancellationToken) =>
                authorizationServer.FollowAuthorizationAsync(context.AuthorizationUri, context.RedirectUri, cancellationToken),
            DynamicClientRegistration = new DynamicClientRegistrationOptions { ClientName = "McpGuard interop tests" },
        };
        configure?.Invoke(oauth);
        return new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = host.McpEndpoint,
            TransportMode = HttpTransportMode.StreamableHttp,
            OAuth = oauth,
        });
    }
}
