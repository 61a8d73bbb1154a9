using System.Collections.Concurrent;
using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Auth;

/// <summary>API keys against the sample (and against small apps that show what reaches the endpoint).</summary>
public sealed class ApiKeyTests : IAsyncLifetime
{
    private GuardedHost _host = null!;

    public async Task InitializeAsync() => _host = await GuardedHost.StartSampleAsync();

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task No_credentials_get_401_unauthorized_with_a_challenge_naming_the_configured_resource_not_the_request_host()
    {
        // The test server listens on a random port; the challenge must still name the configured Resource's origin (5080).
        Assert.NotEqual(5080, _host.BaseAddress.Port);

        using var response = await _host.PostMcpAsync(Echo(), apiKey: null);

        await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, EchoChallenge, -31101, InvalidKeyMessage, "unauthorized");
        Assert.DoesNotContain($":{_host.BaseAddress.Port}", Challenge(response), StringComparison.Ordinal);
    }

    [Fact]
    public async Task No_credentials_for_a_method_without_scopes_challenge_with_every_supported_scope()
    {
        using var response = await _host.PostMcpAsync(Request("tools/list"), apiKey: null);

        await AssertJsonRpcErrorAsync(
            response,
            HttpStatusCode.Unauthorized,
            $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic tools:premium\"",
            -31101,
            InvalidKeyMessage,
            "unauthorized");
    }

    [Fact]
    public async Task No_credentials_for_premium_report_challenge_with_its_scope()
    {
        using var response = await _host.PostMcpAsync(PremiumReport(), apiKey: null);

        await AssertJsonRpcErrorAsync(
            response, HttpStatusCode.Unauthorized, $"Bearer resource_metadata=\"{MetadataUrl}\", scope=\"tools:premium\"", -31101, InvalidKeyMessage, "unauthorized");
    }

    [Fact]
    public async Task Unknown_malformed_revoked_and_expired_keys_get_identical_401_invalid_token_responses()
    {
        string[] keys =
        [
            "mcpg_unknown_key_0000000000000000000000000", // well-formed, unknown
            "demo_alice",                                  // no prefix
            "mcpg_",                                       // only the prefix
            "mcpg_" + new string('a', 8995),               // 9000 characters
            DemoKeys.Revoked,
            DemoKeys.Expired,
        ];
        Assert.Equal(9000, keys[3].Length);

        var bodies = new List<string>();
        var requestIds = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in keys)
        {
            using var response = await _host.PostMcpAsync(Echo(), apiKey: key);
            var body = await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, InvalidKeyEchoChallenge, -31102, InvalidKeyMessage, "invalid_token");
            bodies.Add(WithoutRequestId(body));
            Assert.True(requestIds.Add(RequestId(response)));
        }

        // No oracle: apart from the request id, nothing tells one failure from another.
        Assert.Single(bodies.Distinct(StringComparer.Ordinal));
    }

    [Fact]
    public async Task A_bad_key_in_the_key_header_gets_the_same_401_invalid_token()
    {
        using var response = await _host.PostMcpAsync(Echo(), apiKey: null, headers: new Dictionary<string, string> { ["X-Api-Key"] = DemoKeys.Revoked });

        await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, InvalidKeyEchoChallenge, -31102, InvalidKeyMessage, "invalid_token");
    }

    [Theory]
    [InlineData("Bearer")]
    [InlineData("bearer")]
    [InlineData("BEARER")]
    public async Task A_good_key_as_a_bearer_token_calls_the_tool(string scheme)
    {
        using var response = await _host.PostMcpAsync(
            Echo("through the guard"), apiKey: null, headers: new Dictionary<string, string> { ["Authorization"] = $"{scheme} {DemoKeys.Alice}" });

        await AssertToolTextAsync(response, "through the guard");
    }

    [Fact]
    public async Task A_good_key_in_the_X_Api_Key_header_calls_the_tool()
    {
        using var response = await _host.PostMcpAsync(
            Echo("via header"), apiKey: null, headers: new Dictionary<string, string> { ["X-Api-Key"] = DemoKeys.Bob });

        await AssertToolTextAsync(response, "via header");
    }

    [Fact]
    public async Task A_non_bearer_authorization_scheme_is_no_credential_at_all()
    {
        using var response = await _host.PostMcpAsync(
            Echo(), apiKey: null, headers: new Dictionary<string, string> { ["Authorization"] = "Basic YWxpY2U6bWNwZ19kZW1vX2FsaWNl" });

        await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, EchoChallenge, -31101, InvalidKeyMessage, "unauthorized");
    }

    [Fact]
    public async Task A_key_with_an_expiry_works_until_the_clock_reaches_it()
    {
        const string Key = "mcpg_expiring_test_key";
        var start = new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var clock = new FakeTimeProvider(start);
        await using var host = await GuardedHost.StartSampleAsync(
            new Dictionary<string, string?>
            {
                ["McpGuard:Auth:ApiKeys:Keys:5:Id"] = "expiring",
                ["McpGuard:Auth:ApiKeys:Keys:5:Account"] = "bob",
                ["McpGuard:Auth:ApiKeys:Keys:5:Scopes:0"] = "tools:basic",
                ["McpGuard:Auth:ApiKeys:Keys:5:Hash"] = McpGuardApiKey.Hash(Key),
                ["McpGuard:Auth:ApiKeys:Keys:5:ExpiresAt"] = "2030-01-01T01:00:00Z",
            },
            builder => builder.ConfigureServices(services => services.AddSingleton<TimeProvider>(clock)));

        using (var response = await host.PostMcpAsync(Echo("fresh"), apiKey: Key))
        {
            await AssertToolTextAsync(response, "fresh");
        }

        clock.Advance(TimeSpan.FromMinutes(59) + TimeSpan.FromSeconds(59));
        using (var response = await host.PostMcpAsync(Echo("last second"), apiKey: Key))
        {
            await AssertToolTextAsync(response, "last second");
        }

        clock.Advance(TimeSpan.FromSeconds(1));
        using (var response = await host.PostMcpAsync(Echo("too late"), apiKey: Key))
        {
            await AssertJsonRpcErrorAsync(response, HttpStatusCode.Unauthorized, InvalidKeyEchoChallenge, -31102, InvalidKeyMessage, "invalid_token");
        }

        Assert.Contains(
            host.Logs.Entries,
            e => e.EventId.Id == 4001 && e.Message.StartsWith("API key rejected (expired) for request ", StringComparison.Ordinal) && e.Message.EndsWith("; key id expiring.", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("Authorization")]
    [InlineData("X-Api-Key")]
    public async Task The_credential_is_removed_before_the_endpoint_which_sees_the_caller(string header)
    {
        await using var host = await StartHeaderRecordingAppAsync();
        var value = header == "Authorization" ? $"Bearer {DemoKeys.Alice}" : DemoKeys.Alice;

        using var response = await host.PostMcpAsync(Echo(), apiKey: null, headers: new Dictionary<string, string> { [header] = value });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        AssertJsonEqual(
            JsonNode.Parse("""{"authorization":null,"x_api_key":null,"sub":"alice","key_id":"demo-alice","authenticated":true}""")!,
            JsonNode.Parse(await response.Content.ReadAsStringAsync()));
    }

    [Fact]
    public async Task A_key_store_is_consulted_after_the_configured_keys()
    {
        await using var host = await StartHeaderRecordingAppAsync(guard => guard.Services.AddSingleton<IMcpGuardApiKeyStore, TestKeyStore>());
        var store = Assert.IsType<TestKeyStore>(host.Services.GetRequiredService<IMcpGuardApiKeyStore>());
        store.Add("mcpg_store_dave", new McpGuardApiKey("store-dave", "dave", ["tools:basic"]));
        store.Add("mcpg_store_revoked", new McpGuardApiKey("store-revoked", "dave", ["tools:basic"], revoked: true));
        // The same secret as a configured key, mapped elsewhere: configuration must win, without asking the store.
        store.Add(DemoKeys.Alice, new McpGuardApiKey("store-shadow", "mallory", ["tools:basic"]));

        using (var response = await host.PostMcpAsync(Echo(), apiKey: DemoKeys.Alice))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("alice", JsonNode.Parse(await response.Content.ReadAsStringAsync())!["sub"]!.GetValue<string>());
        }

        Assert.Empty(store.Lookups);

        using (var response = await host.PostMcpAsync(Echo(), apiKey: "mcpg_store_dave"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            AssertJsonEqual(
                JsonNode.Parse("""{"authorization":null,"x_api_key":null,"sub":"dave","key_id":"store-dave","authenticated":true}""")!,
                JsonNode.Parse(await response.Content.ReadAsStringAsync()));
        }

        Assert.Equal([McpGuardApiKey.Hash("mcpg_store_dave")], store.Lookups);

        using (var response = await host.PostMcpAsync(Echo(), apiKey: "mcpg_store_revoked"))
        {
            await AssertJsonRpcErrorAsync(
                response,
                HttpStatusCode.Unauthorized,
                "Bearer error=\"invalid_token\", error_description=\"invalid or expired API key\", resource_metadata=\"http://127.0.0.1:5080/.well-known/oauth-protected-resource/mcp\"",
                -31102,
                InvalidKeyMessage,
                "invalid_token");
        }

        using (var response = await host.PostMcpAsync(Echo(), apiKey: "mcpg_nowhere"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }

        Assert.Equal(
            [McpGuardApiKey.Hash("mcpg_store_dave"), McpGuardApiKey.Hash("mcpg_store_revoked"), McpGuardApiKey.Hash("mcpg_nowhere")],
            store.Lookups);
    }

    /// <summary>
    /// A bare app behind McpGuard (section "Guard", so the sample's appsettings.json in the output folder does not mix in)
    /// whose /mcp endpoint answers with the credential headers it received and the caller it was told about.
    /// </summary>
    internal static Task<GuardedHost> StartHeaderRecordingAppAsync(Action<McpGuardBuilder>? guard = null, IReadOnlyDictionary<string, string?>? extra = null)
    {
        var configuration = new Dictionary<string, string?>
        {
            ["Guard:Auth:Resource"] = "http://127.0.0.1:5080/mcp",
            ["Guard:Auth:AuthorizationServers:0"] = "http://127.0.0.1:5080/dev-issuer",
            ["Guard:Auth:ApiKeys:Enabled"] = "true",
            ["Guard:Auth:ApiKeys:HeaderName"] = "X-Api-Key",
            ["Guard:Auth:ApiKeys:Keys:0:Id"] = "demo-alice",
            ["Guard:Auth:ApiKeys:Keys:0:Account"] = "alice",
            ["Guard:Auth:ApiKeys:Keys:0:Scopes:0"] = "tools:basic",
            ["Guard:Auth:ApiKeys:Keys:0:Hash"] = McpGuardApiKey.Hash(DemoKeys.Alice),
        };
        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            configuration[key] = value;
        }

        return GuardedHost.StartAsync(
            builder =>
            {
                var mcpGuard = builder.Services.AddMcpGuard(builder.Configuration.GetSection("Guard"));
                guard?.Invoke(mcpGuard);
            },
            app =>
            {
                app.UseMcpGuard();
                app.MapPost("/mcp", (HttpContext context) => Results.Json(new Dictionary<string, object?>
                {
                    ["authorization"] = context.Request.Headers.Authorization.Count == 0 ? null : context.Request.Headers.Authorization.ToString(),
                    ["x_api_key"] = context.Request.Headers.TryGetValue("X-Api-Key", out var key) ? key.ToString() : null,
                    ["sub"] = context.User.FindFirst("sub")?.Value,
                    ["key_id"] = context.User.FindFirst("mcpguard:key_id")?.Value,
                    ["authenticated"] = context.User.Identity?.IsAuthenticated == true,
                }));
            },
            configuration);
    }

    /// <summary>A key store keyed by hash that records every lookup (as lowercase hex).</summary>
    internal sealed class TestKeyStore : IMcpGuardApiKeyStore
    {
        private readonly ConcurrentDictionary<string, McpGuardApiKey> _keys = new(StringComparer.Ordinal);
        private readonly ConcurrentQueue<string> _lookups = new();

        public IReadOnlyList<string> Lookups => [.. _lookups];

        public void Add(string plaintext, McpGuardApiKey key) => _keys[McpGuardApiKey.Hash(plaintext)] = key;

        public ValueTask<McpGuardApiKey?> FindAsync(ReadOnlyMemory<byte> sha256, CancellationToken cancellationToken)
        {
            Assert.Equal(32, sha256.Length);
            var hex = Convert.ToHexStringLower(sha256.Span);
            _lookups.Enqueue(hex);
            return ValueTask.FromResult(_keys.TryGetValue(hex, out var key) ? key : null);
        }

        public ValueTask AddAsync(McpGuardApiKey key, ReadOnlyMemory<byte> sha256, CancellationToken cancellationToken)
        {
            _keys[Convert.ToHexStringLower(sha256.Span)] = key;
            return ValueTask.CompletedTask;
        }

        public ValueTask<bool> RevokeAsync(string keyId, CancellationToken cancellationToken) => ValueTask.FromResult(false);
    }
}
