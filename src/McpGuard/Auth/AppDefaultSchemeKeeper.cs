using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace McpGuard.Auth;

/// <summary>
/// Keeps the app's authentication as it was before McpGuard added its schemes. ASP.NET Core makes an app's only scheme
/// its default when none is set; McpGuard's own schemes would end that. So when the app set no default and has exactly
/// one scheme of its own, that scheme is made the default explicitly, as it was implicitly. McpGuard's schemes are
/// never anyone's default: the guard asks for them by name.
/// </summary>
internal sealed class AppDefaultSchemeKeeper : IPostConfigureOptions<AuthenticationOptions>
{
    public void PostConfigure(string? name, AuthenticationOptions options)
    {
        if (options.DefaultScheme is not null)
        {
            return;
        }

        string? only = null;
        var count = 0;
        foreach (var scheme in options.Schemes)
        {
            if (!McpGuardSchemes.IsOwn(scheme.Name))
            {
                only = scheme.Name;
                count++;
            }
        }

        if (count == 1)
        {
            options.DefaultScheme = only;
        }
    }
}
