using System.Net;
using System.Text.Json.Nodes;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Auth;

/// <summary>JWT bearer tokens against the sample with McpGuard:Auth:Jwt:Enabled=true (API keys stay on).</summary>
public sealed class JwtTests : IAsyncLifetime
{
    private const string InvalidTokenEchoChallenge =
        $"Bearer error=\"invalid_token\", error_description=\"invalid or expired token\", resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"";

    private GuardedHost _host = null!;

    public async Task InitializeAsync() => _host = await GuardedHost.StartSampleAsync(TestTokens.JwtEnabled());

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task A_valid_token_with_tools_basic_calls_echo()
    {
        using var response = await _host.PostMcpAsync(Echo("signed and sealed"), apiKey: TestTokens.Create(scope: "tools:basic"));

        await AssertToolTextAsync(response, "signed and sealed");
    }

    public static TheoryData<string, string> BadTokens() => new()
    {
        { "expired", TestTokens.Expired() },
        { "not yet valid", TestTokens.Create(notBefore: TimeProvider.System.GetUtcNow().AddMinutes(10)) },
        { "wrong issuer", TestTokens.Create(issuer: "http://127.0.0.1:5080/other-issuer") },
        { "no issuer", TestTokens.Create(issuer: null) },
        { "audience with a trailing slash", TestTokens.Create(audience: "http://127.0.0.1:5080/mcp/") },
        { "audience of the server's origin", TestTokens.Create(audience: "http://127.0.0.1:5080/") },
        { "audience of another resource", TestTokens.Create(audience: "https://other.example.com/mcp") },
        { "no audience", TestTokens.Create(audience: null) },
        { "bad signature", TestTokens.Create(signingKey: TestTokens.OtherSigningKey) },
        { "alg none", TestTokens.AlgNone() },
        { "no sub", TestTokens.Create(subject: null) },
        { "garbage in JWT shape", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl" },
    };

    [Theory]
    [MemberData(nameof(BadTokens))]
    public async Task A_bad_token_gets_401_invalid_token(string why, string token)
    {
        using var response = await _host.PostMcpAsync(Echo(), apiKey: token);

        Assert.False(string.IsNullOrEmpty(why));
        await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, InvalidTokenEchoChallenge, -31102, InvalidTokenMessage, "invalid_token");
    }

    [Fact]
    public async Task Every_bad_token_gets_the_same_body_apart_from_the_request_id()
    {
        var bodies = new List<string>();
        foreach (var row in BadTokens())
        {
            using var response = await _host.PostMcpAsync(Echo(), apiKey: (string)row[1]);
            var body = await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, InvalidTokenEchoChallenge, -31102, InvalidTokenMessage, "invalid_token");
            bodies.Add(WithoutRequestId(body));
        }

        Assert.Equal(12, bodies.Count);
        Assert.Single(bodies.Distinct(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_token_for_the_test_servers_own_url_is_refused_because_the_audience_comes_from_configuration()
    {
        // The server listens on a random port; only McpGuard:Auth:Resource (port 5080) is the audience.
        var token = TestTokens.Create(audience: _host.McpEndpoint.AbsoluteUri);
        Assert.NotEqual(TestTokens.Audience, _host.McpEndpoint.AbsoluteUri);

        using var response = await _host.PostMcpAsync(Echo(), apiKey: token);

        await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, InvalidTokenEchoChallenge, -31102, InvalidTokenMessage, "invalid_token");
    }

    [Fact]
    public async Task The_token_is_removed_before_the_endpoint_which_sees_the_caller()
    {
        await using var host = await ApiKeyTests.StartHeaderRecordingAppAsync(extra: new Dictionary<string, string?>
        {
            ["Guard:Auth:Jwt:Enabled"] = "true",
            ["Guard:Auth:Jwt:Issuer"] = TestTokens.Issuer,
            ["Guard:Auth:Jwt:SigningKey"] = TestTokens.SigningKey,
        });

        using var response = await host.PostMcpAsync(Echo(), apiKey: TestTokens.Create(subject: "alice"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertJsonEqual(
            JsonNode.Parse("""{"authorization":null,"x_api_key":null,"sub":"alice","key_id":null,"authenticated":true}""")!,
            JsonNode.Parse(await response.Content.ReadAsStringAsync()));
    }

    [Fact]
    public async Task A_token_with_only_tools_basic_calling_premium_report_gets_403_insufficient_scope()
    {
        using var response = await _host.PostMcpAsync(PremiumReport(), apiKey: TestTokens.Create(scope: "tools:basic"));

        await AssertJsonRpcErrorAsync(
            response,
            HttpStatusCode.Forbidden,
            $"Bearer error=\"insufficient_scope\", scope=\"tools:premium\", resource_metadata=\"{MetadataUrl}\"",
            -31103,
            "Insufficient scope: this call needs tools:premium.",
            "insufficient_scope",
            scope: "tools:premium");
    }

    [Fact]
    public async Task A_space_separated_scope_claim_grants_every_scope_in_it()
    {
        using var response = await _host.PostMcpAsync(PremiumReport(), apiKey: TestTokens.Create(scope: "tools:basic tools:premium"));

        await AssertToolTextAsync(response, "Premium report on tea: demand is steady, risks are known, and the outlook is fair.");
    }

    [Fact]
    public async Task An_scp_claim_as_an_array_of_strings_grants_its_scopes()
    {
        var token = TestTokens.Create(scope: null, scp: ["tools:basic", "tools:premium"]);

        using (var response = await _host.PostMcpAsync(PremiumReport(), apiKey: token))
        {
            await AssertToolTextAsync(response, "Premium report on tea: demand is steady, risks are known, and the outlook is fair.");
        }

        using (var response = await _host.PostMcpAsync(Echo("scp"), apiKey: token))
        {
            await AssertToolTextAsync(response, "scp");
        }
    }

    [Fact]
    public async Task A_token_without_any_scope_is_authenticated_but_refused_scoped_tools()
    {
        using var response = await _host.PostMcpAsync(Echo(), apiKey: TestTokens.Create(scope: null));

        await AssertJsonRpcErrorAsync(
            response,
            HttpStatusCode.Forbidden,
            $"Bearer error=\"insufficient_scope\", scope=\"tools:basic\", resource_metadata=\"{MetadataUrl}\"",
            -31103,
            "Insufficient scope: this call needs tools:basic.",
            "insufficient_scope",
            scope: "tools:basic");
    }

    [Fact]
    public async Task With_keys_and_tokens_both_enabled_the_credentials_shape_decides()
    {
        using (var response = await _host.PostMcpAsync(Echo("key"), apiKey: DemoKeys.Bob))
        {
            await AssertToolTextAsync(response, "key");
        }

        using (var response = await _host.PostMcpAsync(Echo("token"), apiKey: TestTokens.Create(subject: "bob")))
        {
            await AssertToolTextAsync(response, "token");
        }

        // A bad key is still judged as a key, a bad token as a token.
        using (var response = await _host.PostMcpAsync(Echo(), apiKey: DemoKeys.Revoked))
        {
            await AssertJsonRpcErrorAsync(
                response,
                HttpStatusCode.Unauthorized,
                $"Bearer error=\"invalid_token\", error_description=\"invalid or expired API key\", resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"",
                -31102,
                InvalidKeyMessage,
                "invalid_token");
        }

        // The key header carries keys only: a good token there is judged as a key, and refused.
        using (var response = await _host.PostMcpAsync(Echo(), apiKey: null, headers: new Dictionary<string, string> { ["X-Api-Key"] = TestTokens.Create() }))
        {
            await AssertJsonRpcErrorAsync(
                response,
                HttpStatusCode.Unauthorized,
                $"Bearer error=\"invalid_token\", error_description=\"invalid or expired API key\", resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"",
                -31102,
                InvalidKeyMessage,
                "invalid_token");
        }
    }

    [Fact]
    public async Task A_suspended_account_with_a_valid_token_gets_403_suspended()
    {
        using var response = await _host.PostMcpAsync(Echo(), apiKey: TestTokens.Create(subject: "carol"));

        await AssertJsonRpcErrorAsync(response, HttpStatusCode.Forbidden, null, -31104, "Account suspended: contact the server's operator.", "suspended");
    }

    [Fact]
    public async Task With_only_tokens_enabled_no_credentials_ask_for_a_token_and_a_key_is_an_invalid_token()
    {
        var configuration = TestTokens.JwtEnabled();
        configuration["McpGuard:Auth:ApiKeys:Enabled"] = "false";
        await using var host = await GuardedHost.StartSampleAsync(configuration);

        using (var response = await host.PostMcpAsync(Echo(), apiKey: null))
        {
            await AssertJsonRpcErrorAsync(
                response,
                HttpStatusCode.Unauthorized,
                $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"",
                -31101,
                "Authentication required: send an OAuth access token as a Bearer token.",
                "unauthorized");
        }

        using (var response = await host.PostMcpAsync(Echo(), apiKey: DemoKeys.Alice))
        {
            await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, InvalidTokenEchoChallenge, -31102, InvalidTokenMessage, "invalid_token");
        }

        using (var response = await host.PostMcpAsync(Echo("only tokens"), apiKey: TestTokens.Create()))
        {
            await AssertToolTextAsync(response, "only tokens");
        }
    }

    [Fact]
    public async Task A_token_works_until_its_expiry_plus_the_clock_skew_on_the_guards_clock()
    {
        var start = new DateTimeOffset(2030, 6, 1, 12, 0, 0, TimeSpan.Zero);
        var clock = new ManualTimeProvider(start);
        await using var host = await GuardedHost.StartSampleAsync(TestTokens.JwtEnabled(), builder => builder.ConfigureServices(services => services.AddSingleton<TimeProvider>(clock)));

        // Issued at start - 1 min, expires at start + 9 min; the default clock skew is 30 s.
        var token = TestTokens.Create(now: start, lifetime: TimeSpan.FromMinutes(10));

        using (var response = await host.PostMcpAsync(Echo("now"), apiKey: token))
        {
            await AssertToolTextAsync(response, "now");
        }

        clock.Advance(TimeSpan.FromMinutes(9) + TimeSpan.FromSeconds(29));
        using (var response = await host.PostMcpAsync(Echo("inside the skew"), apiKey: token))
        {
            await AssertToolTextAsync(response, "inside the skew");
        }

        clock.Advance(TimeSpan.FromSeconds(1));
        using (var response = await host.PostMcpAsync(Echo(), apiKey: token))
        {
            await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, InvalidTokenEchoChallenge, -31102, InvalidTokenMessage, "invalid_token");
        }

        // A token minted by the real clock (years before the guard's clock) is long expired here.
        using (var response = await host.PostMcpAsync(Echo(), apiKey: TestTokens.Create()))
        {
            await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, InvalidTokenEchoChallenge, -31102, InvalidTokenMessage, "invalid_token");
        }
    }
}
