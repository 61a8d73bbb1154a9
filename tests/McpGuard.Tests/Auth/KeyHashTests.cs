using System.Net;
using System.Text.Json;
using McpGuard.Sample;
using McpGuard.Tests.Infrastructure;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Auth;

/// <summary>Key hashing and generation, and the sample's keygen / hash / token commands.</summary>
public sealed class KeyHashTests
{
    [Fact]
    public void Hash_of_the_demo_key_is_the_hash_in_the_sample_settings()
    {
        Assert.Equal("f1911f32d0418f84581e05118df2d3ae638f8fc2b7e8ebf1f0c2a843c9c45cc1", McpGuardApiKey.Hash(DemoKeys.Alice));
        Assert.Equal(SampleKeyHashes()["demo-alice"], McpGuardApiKey.Hash(DemoKeys.Alice));
    }

    [Fact]
    public void Every_demo_key_hashes_to_its_entry_in_the_sample_settings()
    {
        Assert.Equal(
            new Dictionary<string, string>
            {
                ["demo-alice"] = McpGuardApiKey.Hash(DemoKeys.Alice),
                ["demo-bob"] = McpGuardApiKey.Hash(DemoKeys.Bob),
                ["demo-carol"] = McpGuardApiKey.Hash(DemoKeys.Carol),
                ["demo-revoked"] = McpGuardApiKey.Hash(DemoKeys.Revoked),
                ["demo-expired"] = McpGuardApiKey.Hash(DemoKeys.Expired),
            },
            SampleKeyHashes());
    }

    [Fact]
    public void Hash_matches_the_sha256_test_vector()
    {
        // FIPS 180-2, appendix B.1.
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", McpGuardApiKey.Hash("abc"));
    }

    [Fact]
    public void Hash_reads_the_key_as_utf8()
    {
        const string Key = "mcpg_clé";
        var utf8 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(Key)));
        var latin1 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.Latin1.GetBytes(Key)));

        Assert.Equal(utf8, McpGuardApiKey.Hash(Key));
        Assert.NotEqual(latin1, utf8);
    }

    [Fact]
    public void Hash_refuses_an_empty_key()
    {
        Assert.Throws<ArgumentException>(() => McpGuardApiKey.Hash(""));
        Assert.Throws<ArgumentNullException>(() => McpGuardApiKey.Hash(null!));
    }

    [Fact]
    public void Generate_returns_a_prefixed_256_bit_key_and_its_hash()
    {
        var (key, hash) = McpGuardApiKey.Generate();
        var (otherKey, otherHash) = McpGuardApiKey.Generate();

        Assert.Matches("^mcpg_[A-Za-z0-9_-]{43}$", key);
        Assert.Equal(48, key.Length);
        Assert.Equal(32, System.Buffers.Text.Base64Url.DecodeFromChars(key.AsSpan(5)).Length);
        Assert.Equal(McpGuardApiKey.Hash(key), hash);
        Assert.Matches("^[0-9a-f]{64}$", hash);
        Assert.NotEqual(key, otherKey);
        Assert.NotEqual(hash, otherHash);
    }

    [Fact]
    public void Generate_uses_the_given_prefix_and_refuses_a_blank_one()
    {
        var (key, hash) = McpGuardApiKey.Generate("acme");

        Assert.Matches("^acme_[A-Za-z0-9_-]{43}$", key);
        Assert.Equal(McpGuardApiKey.Hash(key), hash);
        Assert.Throws<ArgumentException>(() => McpGuardApiKey.Generate(" "));
    }

    [Fact]
    public async Task A_generated_key_added_by_its_hash_authenticates()
    {
        var (key, hash) = McpGuardApiKey.Generate();
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:Auth:ApiKeys:Keys:5:Id"] = "generated",
            ["McpGuard:Auth:ApiKeys:Keys:5:Account"] = "dave",
            ["McpGuard:Auth:ApiKeys:Keys:5:Scopes:0"] = "tools:basic",
            ["McpGuard:Auth:ApiKeys:Keys:5:Hash"] = hash,
        });

        using var response = await host.PostMcpAsync(Echo("generated"), apiKey: key);

        await AssertToolTextAsync(response, "generated");
    }

    [Fact]
    public void The_hash_command_prints_the_hash_alone()
    {
        using var output = new StringWriter();

        Assert.True(SampleCommands.TryRun(["hash", DemoKeys.Alice], output));

        Assert.Equal("f1911f32d0418f84581e05118df2d3ae638f8fc2b7e8ebf1f0c2a843c9c45cc1" + Environment.NewLine, output.ToString());
    }

    [Fact]
    public void The_hash_command_without_a_key_prints_the_usage()
    {
        using var output = new StringWriter();

        Assert.True(SampleCommands.TryRun(["hash"], output));

        Assert.Equal(
            "usage: keygen [--prefix mcpg] | hash <key> | token [--sub alice] [--scope \"tools:basic tools:premium\"] [--minutes 60] | (no arguments: run the server)"
                + Environment.NewLine,
            output.ToString());
    }

    [Fact]
    public void No_arguments_or_an_unknown_command_runs_the_server_instead()
    {
        using var output = new StringWriter();

        Assert.False(SampleCommands.TryRun([], output));
        Assert.False(SampleCommands.TryRun(["--urls", "http://127.0.0.1:0"], output));
        Assert.Equal("", output.ToString());
    }

    [Theory]
    [InlineData(new string[0], "mcpg")]
    [InlineData(new[] { "--prefix", "acme" }, "acme")]
    public void The_keygen_command_prints_a_key_its_hash_and_what_to_do(string[] options, string prefix)
    {
        using var output = new StringWriter();

        Assert.True(SampleCommands.TryRun(["keygen", .. options], output));

        var lines = output.ToString().Split(Environment.NewLine);
        Assert.Equal(4, lines.Length);
        Assert.Equal("", lines[3]);
        Assert.Matches($"^key:  {prefix}_[A-Za-z0-9_-]{{43}}$", lines[0]);
        var key = lines[0]["key:  ".Length..];
        Assert.Equal($"hash: {McpGuardApiKey.Hash(key)}", lines[1]);
        Assert.Equal("Give the key to its owner (it is shown only now) and add the hash to McpGuard:Auth:ApiKeys:Keys.", lines[2]);
    }

    [Fact]
    public async Task The_token_command_mints_a_token_the_sample_accepts_when_jwts_are_on()
    {
        using var output = new StringWriter();
        Assert.True(SampleCommands.TryRun(["token", "--sub", "bob", "--scope", "tools:basic", "--minutes", "5"], output));
        var printed = output.ToString();
        Assert.EndsWith(Environment.NewLine, printed, StringComparison.Ordinal);
        var token = printed.TrimEnd();
        Assert.Matches("^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$", token);

        using var defaults = new StringWriter();
        Assert.True(SampleCommands.TryRun(["token"], defaults));
        var aliceToken = defaults.ToString().TrimEnd();

        await using var host = await GuardedHost.StartSampleAsync(TestTokens.JwtEnabled());

        using (var response = await host.PostMcpAsync(Echo("minted"), apiKey: token))
        {
            await AssertToolTextAsync(response, "minted");
        }

        // The --scope it was given is all it grants.
        using (var response = await host.PostMcpAsync(PremiumReport(), apiKey: token))
        {
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Equal($"Bearer error=\"insufficient_scope\", scope=\"tools:premium\", resource_metadata=\"{MetadataUrl}\"", Challenge(response));
        }

        // Defaults: alice with tools:basic and tools:premium.
        using (var response = await host.PostMcpAsync(PremiumReport(), apiKey: aliceToken))
        {
            await AssertToolTextAsync(response, "Premium report on tea: demand is steady, risks are known, and the outlook is fair.");
        }
    }

    [Fact]
    public async Task The_token_command_mints_a_token_the_sample_refuses_when_jwts_are_off()
    {
        using var output = new StringWriter();
        Assert.True(SampleCommands.TryRun(["token"], output));
        await using var host = await GuardedHost.StartSampleAsync();

        using var response = await host.PostMcpAsync(Echo(), apiKey: output.ToString().TrimEnd());

        await AssertJsonRpcErrorAsync(
            response,
            HttpStatusCode.Unauthorized,
            $"Bearer error=\"invalid_token\", error_description=\"invalid or expired API key\", resource_metadata=\"{MetadataUrl}\", scope=\"tools:basic\"",
            -31102,
            InvalidKeyMessage,
            "invalid_token");
    }

    private static Dictionary<string, string> SampleKeyHashes()
    {
        using var settings = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "appsettings.json")));
        return settings.RootElement.GetProperty("McpGuard").GetProperty("Auth").GetProperty("ApiKeys").GetProperty("Keys").EnumerateArray()
            .ToDictionary(k => k.GetProperty("Id").GetString()!, k => k.GetProperty("Hash").GetString()!);
    }
}
