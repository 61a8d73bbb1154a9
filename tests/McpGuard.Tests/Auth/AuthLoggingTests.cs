using System.Net;
using McpGuard.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using static McpGuard.Tests.Infrastructure.AuthResponses;

namespace McpGuard.Tests.Auth;

/// <summary>What the logs say about authentication: why a credential was refused, never the credential itself.</summary>
public sealed class AuthLoggingTests : IAsyncLifetime
{
    private GuardedHost _host = null!;

    public async Task InitializeAsync()
    {
        var configuration = TestTokens.JwtEnabled();
        // Everything, framework included, at the most verbose level: a secret must not leak from anywhere.
        configuration["Logging:LogLevel:Default"] = "Trace";
        configuration["Logging:LogLevel:Microsoft"] = "Trace";
        configuration["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace";
        configuration["Logging:LogLevel:ModelContextProtocol"] = "Trace";
        _host = await GuardedHost.StartSampleAsync(configuration);
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task No_log_entry_holds_a_key_or_token_that_was_sent()
    {
        const string UnknownKey = "mcpg_unknown_logging_secret_0123456789";
        const string NoPrefixKey = "notakey_logging_secret_0123456789";
        var longKey = "mcpg_" + new string('q', 8995);
        var validToken = TestTokens.Create(scope: "tools:basic");
        var expiredToken = TestTokens.Expired();
        var badSignatureToken = TestTokens.Create(signingKey: TestTokens.OtherSigningKey);
        var wrongAudienceToken = TestTokens.Create(audience: "https://other.example.com/mcp");
        var noSubToken = TestTokens.Create(subject: null);
        var algNoneToken = TestTokens.AlgNone();

        // Successes.
        await SendAsync(DemoKeys.Alice, HttpStatusCode.OK);
        await SendAsync(null, HttpStatusCode.OK, new Dictionary<string, string> { ["X-Api-Key"] = DemoKeys.Bob });
        await SendAsync(validToken, HttpStatusCode.OK);

        // Failures.
        await SendAsync(null, HttpStatusCode.Unauthorized);
        var unknown = await SendAsync(UnknownKey, HttpStatusCode.Unauthorized);
        var noPrefix = await SendAsync(NoPrefixKey, HttpStatusCode.Unauthorized);
        var tooLong = await SendAsync(longKey, HttpStatusCode.Unauthorized);
        var revoked = await SendAsync(DemoKeys.Revoked, HttpStatusCode.Unauthorized);
        var expired = await SendAsync(null, HttpStatusCode.Unauthorized, new Dictionary<string, string> { ["X-Api-Key"] = DemoKeys.Expired });
        await SendAsync(DemoKeys.Carol, HttpStatusCode.Forbidden);
        await SendAsync(DemoKeys.Bob, HttpStatusCode.Forbidden, body: PremiumReport());
        var expiredJwt = await SendAsync(expiredToken, HttpStatusCode.Unauthorized);
        var badSignature = await SendAsync(badSignatureToken, HttpStatusCode.Unauthorized);
        var wrongAudience = await SendAsync(wrongAudienceToken, HttpStatusCode.Unauthorized);
        var noSub = await SendAsync(noSubToken, HttpStatusCode.Unauthorized);
        var algNone = await SendAsync(algNoneToken, HttpStatusCode.Unauthorized);

        var entries = _host.Logs.Entries;
        // The capture is real: the framework's own request logs and its JwtBearer failures are in it.
        Assert.Contains(entries, e => e.Category.StartsWith("Microsoft.AspNetCore.Hosting", StringComparison.Ordinal));
        Assert.Contains(entries, e => e.Category.StartsWith("Microsoft.AspNetCore.Authentication.JwtBearer", StringComparison.Ordinal) && e.Exception is not null);

        string[] secrets =
        [
            DemoKeys.Alice, DemoKeys.Bob, DemoKeys.Carol, DemoKeys.Revoked, DemoKeys.Expired, UnknownKey, NoPrefixKey, longKey,
            "demo_alice", "demo_bob", "demo_carol", "demo_revoked", "demo_expired", "unknown_logging_secret", "logging_secret", new string('q', 32),
            validToken, expiredToken, badSignatureToken, wrongAudienceToken, noSubToken, algNoneToken,
            TestTokens.SignatureOf(validToken), TestTokens.SignatureOf(expiredToken), TestTokens.SignatureOf(badSignatureToken),
            TestTokens.SignatureOf(wrongAudienceToken), TestTokens.SignatureOf(noSubToken),
            algNoneToken.Split('.')[1], TestTokens.SigningKey,
        ];
        foreach (var secret in secrets)
        {
            var leaks = entries.Where(e => e.FullText.Contains(secret, StringComparison.Ordinal)).ToList();
            Assert.True(leaks.Count == 0, $"'{secret[..Math.Min(secret.Length, 24)]}…' appears in: {string.Join(" | ", leaks.Select(l => $"{l.Category}[{l.EventId.Id}]: {l.FullText}"))}");
        }

        // Why each key was refused, with its id, never its secret.
        AssertSingleEntry(entries, 4001, $"API key rejected (revoked) for request {revoked}; key id demo-revoked.");
        AssertSingleEntry(entries, 4001, $"API key rejected (expired) for request {expired}; key id demo-expired.");
        AssertSingleEntry(entries, 4001, $"API key rejected (unknown) for request {unknown}; key id (none).");
        AssertSingleEntry(entries, 4001, $"API key rejected (too long) for request {tooLong}; key id (none).");
        AssertSingleEntry(entries, 4003, $"Credential for request {noPrefix} is neither an API key nor a JWT.");
        Assert.Equal(4, entries.Count(e => e.EventId.Id == 4001));

        // Why each token was refused: the failure's type, never its message (which may quote the token).
        // McpGuard's own lifetime check (on its TimeProvider) reports an expired token as an invalid lifetime.
        AssertSingleEntry(entries, 4002, $"Bearer token rejected (SecurityTokenInvalidLifetimeException) for request {expiredJwt}.");
        AssertSingleEntry(entries, 4002, $"Bearer token rejected (SecurityTokenSignatureKeyNotFoundException) for request {badSignature}.");
        AssertSingleEntry(entries, 4002, $"Bearer token rejected (SecurityTokenInvalidAudienceException) for request {wrongAudience}.");
        AssertSingleEntry(entries, 4002, $"Bearer token rejected (no 'sub' claim) for request {noSub}.");
        AssertSingleEntry(entries, 4002, $"Bearer token rejected (SecurityTokenInvalidSignatureException) for request {algNone}.");
        Assert.Equal(5, entries.Count(e => e.EventId.Id == 4002));
        Assert.All(entries.Where(e => e.EventId.Id is 4001 or 4002 or 4003), e => Assert.Equal(LogLevel.Information, e.Level));
    }

    private async Task<string> SendAsync(string? credential, HttpStatusCode expected, IReadOnlyDictionary<string, string>? headers = null, string? body = null)
    {
        using var response = await _host.PostMcpAsync(body ?? Echo(), apiKey: credential, headers: headers);
        Assert.Equal(expected, response.StatusCode);
        await response.Content.ReadAsStringAsync();
        return RequestId(response);
    }

    private static void AssertSingleEntry(IReadOnlyList<LogEntry> entries, int eventId, string message)
    {
        var entry = Assert.Single(entries, e => e.Message == message);
        Assert.Equal(eventId, entry.EventId.Id);
        Assert.Equal("McpGuard.Auth.AuthenticationGate", entry.Category);
    }
}
