using System.Collections.Frozen;
using System.Text.Json;
using McpGuard.Protocol;
using Microsoft.AspNetCore.Http;
using ModelContextProtocol;
using ModelContextProtocol.Authentication;

namespace McpGuard.Auth;

/// <summary>Authentication and authorization settings compiled for the hot path (part of <see cref="McpGuardState"/>).</summary>
internal sealed class AuthState
{
    internal const string WellKnownPath = "/.well-known/oauth-protected-resource";

    private static readonly string[] NoScopes = [];

    public AuthState(McpGuardOptions options)
    {
        var auth = options.Auth;
        KeysEnabled = auth.ApiKeys.Enabled;
        JwtEnabled = auth.Jwt.Enabled;
        Schemes = [.. auth.Schemes.Distinct(StringComparer.Ordinal)];
        KeyPrefix = auth.ApiKeys.Prefix + "_";
        KeyHeader = string.IsNullOrWhiteSpace(auth.ApiKeys.HeaderName) ? null : auth.ApiKeys.HeaderName;
        Keys = auth.ApiKeys.Keys
            .Select(k => new ConfiguredKey(
                Convert.FromHexString(k.Hash),
                new McpGuardApiKey(k.Id, k.Account, [.. k.Scopes], k.ExpiresAt, k.Revoked, k.MaxPriceMicro)))
            .ToArray();
        AnonymousMethods = auth.AnonymousMethods.ToFrozenSet(StringComparer.Ordinal);
        AnyMethodAnonymous = AnonymousMethods.Contains("*");
        FilterToolList = auth.FilterToolList;
        AccountClaim = auth.Jwt.AccountClaim;
        ToolScopes = options.Tools.Where(t => t.Value?.Scopes.Count > 0)
            .ToFrozenDictionary(t => t.Key, t => t.Value.Scopes.Distinct(StringComparer.Ordinal).ToArray(), StringComparer.Ordinal);
        MethodScopes = options.Methods.Where(m => m.Value?.Scopes.Count > 0)
            .ToFrozenDictionary(m => m.Key, m => m.Value.Scopes.Distinct(StringComparer.Ordinal).ToArray(), StringComparer.Ordinal);
        SuspendedAccounts = options.Accounts.Where(a => a.Value?.Suspended == true).Select(a => a.Key).ToFrozenSet(StringComparer.Ordinal);

        ScopesSupported = auth.ScopesSupported.Count > 0
            ? [.. auth.ScopesSupported]
            : [.. ToolScopes.Values.Concat(MethodScopes.Values).SelectMany(s => s).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];

        if (auth.Resource is { } resource && Uri.TryCreate(resource, UriKind.Absolute, out var resourceUri))
        {
            Resource = resource;
            var suffix = resourceUri.AbsolutePath == "/" ? "" : resourceUri.AbsolutePath;
            MetadataPath = new PathString(WellKnownPath);
            MetadataSuffixedPath = new PathString(WellKnownPath + suffix);
            if (auth.AuthorizationServers.Count > 0)
            {
                MetadataUrl = resourceUri.GetLeftPart(UriPartial.Authority) + WellKnownPath + suffix;
                MetadataJson = JsonSerializer.SerializeToUtf8Bytes(
                    new ProtectedResourceMetadata
                    {
                        Resource = resource,
                        AuthorizationServers = [.. auth.AuthorizationServers],
                        ScopesSupported = [.. ScopesSupported],
                        BearerMethodsSupported = ["header"],
                        ResourceName = auth.ResourceName,
                        ResourceDocumentation = auth.ResourceDocumentation,
                    },
                    McpJsonUtilities.DefaultOptions);
            }
        }
    }

    public bool Enabled => KeysEnabled || JwtEnabled || Schemes.Length > 0;

    /// <summary>The app's own schemes that authenticate callers (<c>Auth:Schemes</c>), in order.</summary>
    public string[] Schemes { get; }

    public bool KeysEnabled { get; }

    public bool JwtEnabled { get; }

    /// <summary>The key prefix including its underscore (<c>mcpg_</c>).</summary>
    public string KeyPrefix { get; }

    public string? KeyHeader { get; }

    public ConfiguredKey[] Keys { get; }

    public FrozenSet<string> AnonymousMethods { get; }

    /// <summary><c>AnonymousMethods</c> holds <c>*</c>: every method may come without credentials.</summary>
    public bool AnyMethodAnonymous { get; }

    /// <summary>Whether a call of <paramref name="method"/> may come without credentials.</summary>
    public bool IsAnonymous(string method) => AnyMethodAnonymous || AnonymousMethods.Contains(method);

    public bool FilterToolList { get; }

    /// <summary>The JWT claim that names the account.</summary>
    public string AccountClaim { get; }

    public FrozenDictionary<string, string[]> ToolScopes { get; }

    public FrozenDictionary<string, string[]> MethodScopes { get; }

    public FrozenSet<string> SuspendedAccounts { get; }

    public string[] ScopesSupported { get; }

    public string? Resource { get; }

    /// <summary>The metadata document's URL for <c>resource_metadata</c>; null when no metadata is published.</summary>
    public string? MetadataUrl { get; }

    public PathString MetadataPath { get; }

    public PathString MetadataSuffixedPath { get; }

    /// <summary>The metadata document, serialized once.</summary>
    public byte[]? MetadataJson { get; }

    /// <summary>Every scope the call needs: the tool's for <c>tools/call</c>, else the method's.</summary>
    public string[] RequiredScopes(McpEnvelope? envelope)
    {
        if (envelope?.Method is not { } method)
        {
            return NoScopes;
        }

        if (envelope.IsToolCall)
        {
            return envelope.Name is { } tool && ToolScopes.TryGetValue(tool, out var toolScopes) ? toolScopes : NoScopes;
        }

        return MethodScopes.TryGetValue(method, out var methodScopes) ? methodScopes : NoScopes;
    }

    /// <summary>The tool's required scopes (for filtering <c>tools/list</c>).</summary>
    public string[] ToolRequiredScopes(string tool) => ToolScopes.TryGetValue(tool, out var scopes) ? scopes : NoScopes;

    /// <summary>
    /// Whether <c>tools/list</c> shows <paramref name="tool"/> to <paramref name="caller"/> (null: anonymous): always, unless
    /// authentication and <c>FilterToolList</c> are on and the tool needs scopes the caller lacks. The one rule of
    /// <c>WithMcpGuard()</c>'s list filter and the proxy's.
    /// </summary>
    public bool ListsTool(string tool, McpGuardCaller? caller) =>
        !Enabled || !FilterToolList || ToolRequiredScopes(tool) is var required && (required.Length == 0 || (caller?.HasAll(required) ?? false));

    internal sealed record ConfiguredKey(byte[] Hash, McpGuardApiKey Key)
    {
        /// <summary>What the key grants, compiled once with the configuration instead of on every request.</summary>
        public ApiKeyGrant Grant { get; } = new(Key);
    }

    /// <summary>Whether the account is suspended: by configuration (<c>Accounts:&lt;id&gt;:Suspended</c>) or in the account status store.</summary>
    public ValueTask<bool> IsSuspendedAsync(string account, IMcpGuardAccountStatusStore store, CancellationToken cancellationToken) =>
        SuspendedAccounts.Contains(account) ? ValueTask.FromResult(true) : store.IsSuspendedAsync(account, cancellationToken);
}
