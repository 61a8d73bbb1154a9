using System.Net;
using System.Text.Json.Nodes;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Auth;

/// <summary>JWT bearer tokens against the sample with McpGuard:Auth:Jwt:Enabled=true (API keys stay on).</summary>
public sealed class JwtTests : IAsyncLifetime
{
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
        foreach (var token in BadTokens().Select(row => (string)row[1]).Concat(BadlyTypedTokens().Select(row => (string)row[1])))
        {
            using var response = await _host.PostMcpAsync(Echo(), apiKey: token);
            var body = await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, InvalidTokenEchoChallenge, -31102, InvalidTokenMessage, "invalid_token");
            bodies.Add(WithoutRequestId(body));
        }

        Assert.Equal(12 + 19, bodies.Count);
        Assert.Single(bodies.Distinct(StringComparer.Ordinal));
    }

    /// <summary>
    /// Signed, unexpired tokens for the right issuer and audience whose claims or header have the wrong JSON type, and
    /// the reason the log gives. IdentityModel refuses some shapes itself (its exception type is the reason); the rest
    /// it would accept, so McpGuard refuses them after validation and says why.
    /// </summary>
    public static TheoryData<string, string, string> BadlyTypedTokens()
    {
        static string Payload(params (string, string?)[] members) => TestTokens.SignedJson(TestTokens.Hs256Header, TestTokens.PayloadJson(members));
        static string Header(string header) => TestTokens.SignedJson(header, TestTokens.PayloadJson());
        var inAnHour = TimeProvider.System.GetUtcNow().AddHours(1).ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);
        var aMinuteAgo = TimeProvider.System.GetUtcNow().AddMinutes(-1).ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture);

        return new()
        {
            // IdentityModel reads a number as the account's name: a numeric sub would be account "42".
            { "a numeric sub", Payload(("sub", "42")), "'sub' is not a JSON string" },
            { "a negative fractional sub", Payload(("sub", "-1.5e3")), "'sub' is not a JSON string" },
            { "a boolean sub", Payload(("sub", "true")), "ArgumentException" },
            { "an array sub", Payload(("sub", "[\"alice\"]")), "ArgumentException" },
            { "an object sub", Payload(("sub", "{\"id\":\"alice\"}")), "ArgumentException" },
            { "a null sub", Payload(("sub", "null")), "'sub' is not a JSON string" },
            // IdentityModel reads a string holding digits as the time: these would be valid until 2286.
            { "exp as a string", Payload(("exp", "\"9999999999\"")), "'exp' is not a JSON number" },
            { "exp as a string of the right time", Payload(("exp", $"\"{inAnHour}\"")), "'exp' is not a JSON number" },
            { "nbf as a string", Payload(("nbf", $"\"{aMinuteAgo}\"")), "'nbf' is not a JSON number" },
            { "exp as a boolean", Payload(("exp", "true")), "ArgumentException" },
            { "nbf as null", Payload(("nbf", "null")), "ArgumentException" },
            // IdentityModel ignores crit; McpGuard understands no extension, so any name in crit is refused.
            { "crit naming a parameter McpGuard does not know", Header("""{"alg":"HS256","typ":"JWT","crit":["exp2"],"exp2":1}"""), "a 'crit' header parameter McpGuard does not understand" },
            { "crit naming b64 (unencoded payload)", Header("""{"alg":"HS256","typ":"JWT","crit":["b64"],"b64":true}"""), "a 'crit' header parameter McpGuard does not understand" },
            { "crit as a string", Header("""{"alg":"HS256","typ":"JWT","crit":"exp2","exp2":1}"""), "'crit' is not an array of strings" },
            { "crit holding a number", Header("""{"alg":"HS256","typ":"JWT","crit":[5]}"""), "'crit' is not an array of strings" },
            { "crit as null", Header("""{"alg":"HS256","typ":"JWT","crit":null}"""), "'crit' is not an array of strings" },
            // IdentityModel takes the last of repeated members: this one would be bob's.
            { "a repeated sub", TestTokens.SignedJson(TestTokens.Hs256Header, TestTokens.PayloadJson().Replace("\"sub\":\"alice\"", "\"sub\":\"alice\",\"sub\":\"bob\"", StringComparison.Ordinal)),
                "the payload is not a JSON object without repeated members" },
            { "a repeated exp", TestTokens.SignedJson(TestTokens.Hs256Header, TestTokens.PayloadJson(("exp", "1")).TrimEnd('}') + $",\"exp\":{inAnHour}}}"),
                "the payload is not a JSON object without repeated members" },
            { "a repeated alg", Header("""{"alg":"none","alg":"HS256","typ":"JWT"}"""), "the header is not a JSON object without repeated members" },
        };
    }

    [Theory]
    [MemberData(nameof(BadlyTypedTokens))]
    public async Task A_token_whose_claims_or_header_have_the_wrong_type_gets_401_invalid_token_and_the_log_says_why(string why, string token, string reason)
    {
        using var response = await _host.PostMcpAsync(Echo(), apiKey: token);

        Assert.False(string.IsNullOrEmpty(why));
        await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, InvalidTokenEchoChallenge, -31102, InvalidTokenMessage, "invalid_token");
        var requestId = RequestId(response);
        var logged = Assert.Single(_host.Logs.Entries, e => e.Message.Contains(requestId, StringComparison.Ordinal) && e.EventId.Id == 4002);
        Assert.Equal(Microsoft.Extensions.Logging.LogLevel.Information, logged.Level);
        Assert.Equal($"Bearer token rejected ({reason}) for request {requestId}.", logged.Message);
        Assert.DoesNotContain(_host.Logs.Entries, e => e.FullText.Contains(TestTokens.SignatureOf(token), StringComparison.Ordinal));
        Assert.DoesNotContain(_host.Logs.Entries, e => e.FullText.Contains(token.Split('.')[1], StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_empty_crit_and_fractional_times_are_accepted()
    {
        var now = TimeProvider.System.GetUtcNow();
        var fractional = TestTokens.SignedJson(TestTokens.Hs256Header, TestTokens.PayloadJson(
            ("nbf", $"{now.AddMinutes(-1).ToUnixTimeSeconds()}.25"),
            ("exp", $"{now.AddHours(1).ToUnixTimeSeconds()}.5")));
        var emptyCrit = TestTokens.SignedJson("""{"alg":"HS256","typ":"JWT","crit":[]}""", TestTokens.PayloadJson());

        using (var response = await _host.PostMcpAsync(Echo("fractional"), apiKey: fractional))
        {
            await AssertToolTextAsync(response, "fractional");
        }

        using (var response = await _host.PostMcpAsync(Echo("empty crit"), apiKey: emptyCrit))
        {
            await AssertToolTextAsync(response, "empty crit");
        }
    }

    [Fact]
    public async Task The_configured_account_claim_must_be_a_string_and_sub_is_then_not_looked_at()
    {
        var configuration = TestTokens.JwtEnabled();
        configuration["McpGuard:Auth:Jwt:AccountClaim"] = "account_id";
        await using var host = await GuardedHost.StartSampleAsync(configuration);

        using (var response = await host.PostMcpAsync(Echo("by account_id"), apiKey: TestTokens.SignedJson(TestTokens.Hs256Header, TestTokens.PayloadJson(("sub", "7"), ("account_id", "\"bob\"")))))
        {
            await AssertToolTextAsync(response, "by account_id");
        }

        using (var response = await host.PostMcpAsync(Echo(), apiKey: TestTokens.SignedJson(TestTokens.Hs256Header, TestTokens.PayloadJson(("account_id", "1234")))))
        {
            await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, InvalidTokenEchoChallenge, -31102, InvalidTokenMessage, "invalid_token");
            var requestId = RequestId(response);
            Assert.Equal(
                $"Bearer token rejected ('account_id' is not a JSON string) for request {requestId}.",
                Assert.Single(host.Logs.Entries, e => e.EventId.Id == 4002 && e.Message.Contains(requestId, StringComparison.Ordinal)).Message);
        }
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

        await AssertPremiumRefusedAsync(response);
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
        var clock = new FakeTimeProvider(start);
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
