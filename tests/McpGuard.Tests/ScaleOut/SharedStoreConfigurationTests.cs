using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace McpGuard.Tests.ScaleOut;

/// <summary>
/// The scale-out options are validated at start-up with every problem at once, and an integration that configuration
/// asks for but the app did not add fails the start with the line of code that adds it.
/// </summary>
public sealed class SharedStoreConfigurationTests
{
    [Fact]
    public async Task Shared_stores_without_their_settings_fail_start_up_listing_every_problem()
    {
        var exception = await Assert.ThrowsAsync<OptionsValidationException>(() => GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            // The sample's appsettings.json gives both by example: blanked here.
            ["McpGuard:PostgreSql:ConnectionString"] = "",
            ["McpGuard:Redis:Configuration"] = "",
            ["McpGuard:Store"] = "PostgreSql",
            ["McpGuard:PostgreSql:Schema"] = "McpGuard",
            ["McpGuard:RateLimits:Store"] = "Redis",
            ["McpGuard:Redis:KeyPrefix"] = "{mcpguard}",
            ["McpGuard:StoreTimeout"] = "00:00:00.05",
        }, inMemory: true));

        Assert.Equal(
            [
                "McpGuard:PostgreSql:ConnectionString is required when McpGuard:Store is PostgreSql (for example 'Host=localhost;Database=app;Username=mcpguard;Password=...').",
                "McpGuard:PostgreSql:Schema must be a lower-case PostgreSQL identifier of at most 55 characters: letters, digits and '_', not starting with a digit (got 'McpGuard').",
                "McpGuard:Redis:Configuration is required when McpGuard:RateLimits:Store is Redis (a StackExchange.Redis configuration string, for example 'localhost:6379').",
                "McpGuard:Redis:KeyPrefix must be non-empty, without braces or white space (got '{mcpguard}').",
                "McpGuard:StoreTimeout must be between 00:00:00.1 and 00:01:00 (got '00:00:00.0500000').",
            ],
            exception.Failures.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData(55, true)]
    [InlineData(56, false)]
    public void A_schema_name_leaves_room_for_its_notification_channel_within_63_bytes(int length, bool valid)
    {
        // The channel is the schema plus "_changes" (8 more), and PostgreSQL identifiers are at most 63 bytes.
        var options = new McpGuardOptions { Store = McpGuardStoreKind.PostgreSql };
        options.PostgreSql.ConnectionString = "Host=localhost";
        options.PostgreSql.Schema = new string('s', length);
        Assert.Equal(valid, new McpGuardOptionsValidator().Validate(Microsoft.Extensions.Options.Options.DefaultName, options).Succeeded);
    }

    [Fact]
    public async Task A_token_bucket_Redis_cannot_keep_exact_fails_start_up()
    {
        // 99,991 (a prime) per day: the bucket's level in microseconds per permit would pass 2^52, where Lua's doubles stop being exact.
        var exception = await Assert.ThrowsAsync<OptionsValidationException>(() => GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:RateLimits:Store"] = "Redis",
            ["McpGuard:Redis:Configuration"] = "127.0.0.1:1",
            ["McpGuard:RateLimits:Policies:bucket:Algorithm"] = "TokenBucket",
            ["McpGuard:RateLimits:Policies:bucket:Windows:0:Permits"] = "99991",
            ["McpGuard:RateLimits:Policies:bucket:Windows:0:Window"] = "1.00:00:00",
            ["McpGuard:RateLimits:Policies:fine:Algorithm"] = "TokenBucket",
            ["McpGuard:RateLimits:Policies:fine:Windows:0:Permits"] = "7919",
            ["McpGuard:RateLimits:Policies:fine:Windows:0:Window"] = "1.00:00:00",
        }, inMemory: true));

        Assert.Equal(
            ["McpGuard:RateLimits:Policies:bucket:Windows:0: a token bucket on Redis needs lcm(Permits, Window in microseconds) of at most 2^52; 99991 per 1.00:00:00 is more. Use fewer permits or a shorter window."],
            exception.Failures);
    }

    [Theory]
    [InlineData("McpGuard:Store", "Postgres", "McpGuard.McpGuardStoreKind")]
    [InlineData("McpGuard:RateLimits:Store", "Memcached", "McpGuard.McpGuardRateLimitStoreKind")]
    [InlineData("McpGuard:RateLimits:OnStoreFailure", "Ignore", "McpGuard.McpGuardStoreFailureMode")]
    public async Task An_unknown_store_or_failure_mode_is_refused_by_name(string key, string value, string type)
    {
        // The binder refuses a name the enum does not have before validation runs, naming the key and the value.
        var exception = await Assert.ThrowsAsync<InvalidOperationException>(() => GuardedHost.StartSampleAsync(new Dictionary<string, string?> { [key] = value }, inMemory: true));

        Assert.Equal($"Failed to convert configuration value '{value}' at '{key}' to type '{type}'.", exception.Message);
    }

    [Fact]
    public async Task PostgreSql_in_configuration_without_the_integration_fails_start_up_naming_the_call_to_add()
    {
        var exception = await Assert.ThrowsAsync<InvalidOperationException>(() => GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app => app.UseMcpGuard(),
            new Dictionary<string, string?>
            {
                ["McpGuard:Store"] = "PostgreSql",
                ["McpGuard:PostgreSql:ConnectionString"] = "Host=127.0.0.1;Port=1;Database=none",
            }));

        Assert.Equal(
            "McpGuard:Store is PostgreSql, but McpGuard.PostgreSql is not added. Add the McpGuard.PostgreSql package and call builder.Services.AddMcpGuard().AddMcpGuardPostgreSql().",
            exception.Message);
    }

    [Fact]
    public async Task Redis_in_configuration_without_the_integration_fails_start_up_naming_the_call_to_add()
    {
        var exception = await Assert.ThrowsAsync<InvalidOperationException>(() => GuardedHost.StartAsync(
            builder => builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard")),
            app => app.UseMcpGuard(),
            new Dictionary<string, string?>
            {
                ["McpGuard:Store"] = "InMemory",
                ["McpGuard:RateLimits:Store"] = "Redis",
                ["McpGuard:Redis:Configuration"] = "127.0.0.1:1",
            }));

        Assert.Equal(
            "McpGuard:RateLimits:Store is Redis, but McpGuard.Redis is not added. Add the McpGuard.Redis package and call builder.Services.AddMcpGuard().AddMcpGuardRedis().",
            exception.Message);
    }
}
