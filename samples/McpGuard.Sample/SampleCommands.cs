using System.Security.Claims;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace McpGuard.Sample;

/// <summary>
/// What the sample runs instead of its guarded server (Program.cs): <c>keygen</c> creates an API key and its hash,
/// <c>hash</c> hashes a key for appsettings.json, <c>token</c> mints a development JWT signed with
/// <c>McpGuard:Auth:Jwt:SigningKey</c>, and <see cref="GuardSwitch"/> = <c>false</c> runs the same MCP server unguarded.
/// </summary>
public static class SampleCommands
{
    /// <summary>The switch that turns the guard off, so benchmarks/compare.sh can measure what the guard costs.</summary>
    public const string GuardSwitch = "Sample:Guard";

    /// <summary>Runs a command, or the unguarded server, and returns true; returns false when Program.cs should run the guarded server.</summary>
    public static bool TryRun(string[] args, TextWriter output)
    {
        switch (args.FirstOrDefault())
        {
            case "keygen":
                var (key, hash) = McpGuardApiKey.Generate(Option(args, "--prefix") ?? "mcpg");
                output.WriteLine($"key:  {key}");
                output.WriteLine($"hash: {hash}");
                output.WriteLine("Give the key to its owner (it is shown only now) and add the hash to McpGuard:Auth:ApiKeys:Keys.");
                return true;
            case "hash" when args.Length == 2:
                output.WriteLine(McpGuardApiKey.Hash(args[1]));
                return true;
            case "token":
                output.WriteLine(MintToken(args));
                return true;
            case "hash" or "help" or "--help":
                output.WriteLine("usage: keygen [--prefix mcpg] | hash <key> | token [--sub alice] [--scope \"tools:basic tools:premium\"] [--minutes 60] | (no arguments: run the server)");
                return true;
        }

        if (ReadConfiguration(args).GetValue(GuardSwitch, defaultValue: true))
        {
            return false;
        }

        RunUnguarded(args);
        return true;
    }

    /// <summary>
    /// <c>Sample:Guard=false</c>: the same MCP server, tools and endpoint as Program.cs with no guard at all: no
    /// <c>AddMcpGuard</c>, no <c>WithMcpGuard</c> tool filters, no <c>UseMcpGuard</c> and no admin API. Keys, scopes,
    /// rate limits and prices are not checked. For measurements only.
    /// </summary>
    private static void RunUnguarded(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        builder.Services.AddMcpServer()
            .WithHttpTransport()
            .WithTools<SampleTools>();

        var app = builder.Build();
        app.MapMcp("/mcp");
        app.Run();
    }

    /// <summary>The sample's appsettings.json, environment variables and command line, read before the server is built.</summary>
    private static IConfiguration ReadConfiguration(string[] args) =>
        new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(args)
            .Build();

    private static string MintToken(string[] args)
    {
        var configuration = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json")
            .AddCommandLine(args.Where(a => a.StartsWith("--McpGuard", StringComparison.Ordinal)).ToArray())
            .Build();
        var jwt = configuration.GetSection("McpGuard:Auth:Jwt");
        var signingKey = jwt["SigningKey"] ?? throw new InvalidOperationException("McpGuard:Auth:Jwt:SigningKey is not configured.");
        var minutes = int.Parse(Option(args, "--minutes") ?? "60", System.Globalization.CultureInfo.InvariantCulture);
        var now = TimeProvider.System.GetUtcNow().UtcDateTime;
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = jwt["Issuer"],
            Audience = jwt["Audience"] ?? configuration["McpGuard:Auth:Resource"],
            Subject = new ClaimsIdentity(
            [
                new Claim(jwt["AccountClaim"] ?? "sub", Option(args, "--sub") ?? "alice"),
                new Claim("scope", Option(args, "--scope") ?? "tools:basic tools:premium"),
            ]),
            IssuedAt = now,
            NotBefore = now,
            Expires = now.AddMinutes(minutes),
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Convert.FromBase64String(signingKey)), SecurityAlgorithms.HmacSha256),
        };
        return new JsonWebTokenHandler().CreateToken(descriptor);
    }

    private static string? Option(string[] args, string name)
    {
        var index = Array.IndexOf(args, name);
        return index >= 0 && index + 1 < args.Length ? args[index + 1] : null;
    }
}
