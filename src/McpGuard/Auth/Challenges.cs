using System.Text;

namespace McpGuard.Auth;

/// <summary>
/// Builds <c>WWW-Authenticate</c> values (RFC 6750 / RFC 9728). Real clients split parameters on commas and
/// read only the first Bearer challenge, so McpGuard sends exactly one, and no value contains a comma
/// (configuration validation guarantees it for scopes and URIs; descriptions are fixed strings).
/// </summary>
internal static class Challenges
{
    /// <summary>The 401 challenge: <c>Bearer [error="invalid_token", error_description="…", ]resource_metadata="…", scope="…"</c>.</summary>
    public static string Unauthorized(AuthState auth, string? error, string? description, string[] scopes)
    {
        var builder = new StringBuilder("Bearer ");
        var first = true;
        Append(builder, ref first, "error", error);
        Append(builder, ref first, "error_description", description);
        Append(builder, ref first, "resource_metadata", auth.MetadataUrl);
        Append(builder, ref first, "scope", scopes.Length > 0 ? string.Join(' ', scopes) : null);
        return first ? "Bearer" : builder.ToString();
    }

    /// <summary>The 403 step-up challenge: <c>Bearer error="insufficient_scope", scope="…", resource_metadata="…"</c>.</summary>
    public static string InsufficientScope(AuthState auth, string[] scopes)
    {
        var builder = new StringBuilder("Bearer ");
        var first = true;
        Append(builder, ref first, "error", "insufficient_scope");
        Append(builder, ref first, "scope", string.Join(' ', scopes));
        Append(builder, ref first, "resource_metadata", auth.MetadataUrl);
        return builder.ToString();
    }

    private static void Append(StringBuilder builder, ref bool first, string name, string? value)
    {
        if (value is null)
        {
            return;
        }

        if (!first)
        {
            builder.Append(", ");
        }

        builder.Append(name).Append("=\"").Append(value).Append('"');
        first = false;
    }
}
