using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using McpGuard.Auth;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Tests.Auth;

/// <summary>What an API key grants, compiled once per configured key: the scope set and a fresh principal per request.</summary>
public sealed class ApiKeyGrantTests
{
    private static readonly McpGuardApiKey Key = new("k1", "alice", ["tools:basic", "tools:premium", "tools:basic"]);

    [Fact]
    public void The_principal_is_the_one_the_gate_always_built()
    {
        var grant = new ApiKeyGrant(Key);
        // The construction the gate used before the grant was compiled once: claims copied into a new identity.
        var scopes = Key.Scopes.ToHashSet(StringComparer.Ordinal);
        var claims = new List<Claim> { new("sub", Key.Account), new("mcpguard:key_id", Key.Id) };
        claims.AddRange(grant.Scopes.Select(s => new Claim("scope", s)));
        var expected = new ClaimsPrincipal(new ClaimsIdentity(claims, AuthenticationGate.ApiKeyAuthenticationType, "sub", null));

        var principal = grant.CreatePrincipal(Key, "req_grant");

        Assert.True(scopes.SetEquals(grant.Scopes));
        var identity = Assert.IsType<McpGuardCallerIdentity>(Assert.Single(principal.Identities));
        Assert.Same(grant.Caller, identity.Caller);
        Assert.Equal("req_grant", identity.RequestId);
        var expectedIdentity = Assert.Single(expected.Identities);
        Assert.Equal(
            (expectedIdentity.AuthenticationType, expectedIdentity.NameClaimType, expectedIdentity.RoleClaimType, expectedIdentity.IsAuthenticated, expectedIdentity.Name, expectedIdentity.Label, expectedIdentity.Actor),
            (identity.AuthenticationType, identity.NameClaimType, identity.RoleClaimType, identity.IsAuthenticated, identity.Name, identity.Label, identity.Actor));
        Assert.Equal(
            expectedIdentity.Claims.Select(c => (c.Type, c.Value, c.ValueType, c.Issuer, c.OriginalIssuer, c.Properties.Count)),
            identity.Claims.Select(c => (c.Type, c.Value, c.ValueType, c.Issuer, c.OriginalIssuer, c.Properties.Count)));
        Assert.Equal(["sub", "mcpguard:key_id", "scope", "scope"], identity.Claims.Select(c => c.Type));
        Assert.All(identity.Claims, c => Assert.Same(identity, c.Subject));
        Assert.Equal("alice", principal.Identity?.Name);
    }

    [Fact]
    public void Every_request_gets_its_own_principal_so_a_change_to_one_reaches_no_other()
    {
        var grant = new ApiKeyGrant(Key);

        var first = grant.CreatePrincipal(Key, "req_1");
        var second = grant.CreatePrincipal(Key, "req_2");
        ((ClaimsIdentity)first.Identity!).AddClaim(new Claim("role", "admin"));
        first.AddIdentity(new ClaimsIdentity("extra"));
        ((ClaimsIdentity)first.Identity!).RemoveClaim(first.FindFirst("mcpguard:key_id"));

        Assert.NotSame(first, second);
        Assert.NotSame(first.Identity, second.Identity);
        Assert.Empty(first.Claims.Intersect(second.Claims)); // no Claim object is shared
        Assert.Single(second.Identities);
        Assert.Equal(["sub", "mcpguard:key_id", "scope", "scope"], second.Claims.Select(c => c.Type));
        Assert.Null(second.FindFirst("role"));
        Assert.Equal(["sub", "scope", "scope", "role"], first.Claims.Select(c => c.Type));
    }

    [Fact]
    public void The_caller_is_the_keys_account_id_and_scopes()
    {
        var grant = new ApiKeyGrant(Key);

        Assert.Equal(("alice", "k1", McpGuardCredentialKind.ApiKey), (grant.Caller.Account, grant.Caller.KeyId, grant.Caller.Kind));
        Assert.Same(grant.Scopes, grant.Caller.Scopes);
        Assert.True(grant.Caller.HasAll(["tools:basic", "tools:premium"]));
        Assert.False(grant.Caller.HasAll(["tools:admin"]));
    }

    [Fact]
    public async Task Two_requests_with_a_configured_key_share_its_caller_but_not_a_principal()
    {
        var (key, hash) = McpGuardApiKey.Generate();
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["McpGuard:Auth:Resource"] = "http://127.0.0.1/mcp",
            ["McpGuard:Auth:ApiKeys:Enabled"] = "true",
            ["McpGuard:Auth:ApiKeys:Keys:0:Id"] = "k1",
            ["McpGuard:Auth:ApiKeys:Keys:0:Hash"] = hash,
            ["McpGuard:Auth:ApiKeys:Keys:0:Account"] = "alice",
            ["McpGuard:Auth:ApiKeys:Keys:0:Scopes:0"] = "tools:basic",
        }).Build();
        var services = new ServiceCollection().AddLogging();
        services.AddMcpGuard(configuration.GetSection("McpGuard"));
        await using var provider = services.BuildServiceProvider();
        var pipeline = provider.GetRequiredService<McpGuardPipeline>();

        var seen = new List<(McpGuardCaller? Caller, ClaimsPrincipal User)>();
        for (var i = 0; i < 2; i++)
        {
            // Each request has its own scope, as in a host: authentication handlers are per request.
            await using var scope = provider.CreateAsyncScope();
            var context = new DefaultHttpContext { RequestServices = scope.ServiceProvider };
            context.Request.Method = HttpMethods.Post;
            context.Request.Path = "/mcp";
            context.Request.ContentType = "application/json";
            context.Request.Headers.Accept = "application/json, text/event-stream";
            context.Request.Headers.Authorization = "Bearer " + key;
            context.Request.Body = new MemoryStream(Encoding.UTF8.GetBytes("""{"jsonrpc":"2.0","id":1,"method":"tools/list"}"""));
            await pipeline.InvokeAsync(context, ctx =>
            {
                seen.Add((ctx.Features.Get<McpGuardFeature>()!.Caller, ctx.User));
                return Task.CompletedTask;
            });
        }

        Assert.Equal(2, seen.Count);
        Assert.Same(seen[0].Caller, seen[1].Caller);
        Assert.Equal("alice", seen[0].Caller!.Account);
        Assert.NotSame(seen[0].User, seen[1].User);
        Assert.All(seen, s => Assert.Equal(["alice", "k1", "tools:basic"], s.User.Claims.Select(c => c.Value)));
    }

    [Theory]
    [InlineData("mcpg_demo_alice")]
    [InlineData("mcpg_ünïcødé_🔑")]
    [InlineData(null)] // 5,000 characters: encoded in a pooled buffer rather than on the stack
    public void A_credential_hashes_to_the_sha256_of_its_utf8_bytes(string? credential)
    {
        credential ??= "mcpg_" + new string('x', 4995);
        Span<byte> hash = stackalloc byte[32];

        Assert.True(Credentials.TryHash(credential, hash));

        Assert.Equal(SHA256.HashData(Encoding.UTF8.GetBytes(credential)), hash.ToArray());
        Assert.Equal(McpGuardApiKey.Hash(credential), Convert.ToHexStringLower(hash));
        Assert.True(Credentials.Matches(credential, McpGuardApiKey.Hash(credential)));
        Assert.False(Credentials.Matches(credential + "x", McpGuardApiKey.Hash(credential)));
    }

    [Fact]
    public void A_credential_longer_than_8192_characters_is_not_hashed_and_matches_nothing()
    {
        var credential = "mcpg_" + new string('x', 8188);
        Span<byte> hash = stackalloc byte[32];

        Assert.False(Credentials.TryHash(credential, hash));
        Assert.Equal(new byte[32], hash.ToArray());
        Assert.False(Credentials.Matches(credential, McpGuardApiKey.Hash(credential)));
        Assert.True(Credentials.TryHash(credential.AsSpan(0, 8192), hash));
    }

    [Theory]
    [InlineData("")]
    [InlineData("abc")]
    [InlineData("zz3f0d8e3fa8fa5ac5c4f1cb7a1f4b0c0e7bbcfd4a6e6c2c7b8d0f1a2b3c4d5e6f")]
    public void A_malformed_configured_hash_matches_nothing(string hash) =>
        Assert.False(Credentials.Matches("mcpg_demo_alice", hash));
}
