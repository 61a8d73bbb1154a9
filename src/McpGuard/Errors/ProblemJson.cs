using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Net.Http.Headers;

namespace McpGuard.Errors;

/// <summary>
/// Writes RFC 9457 problem details through the app's <see cref="IProblemDetailsService"/> when it registered one
/// (<c>AddProblemDetails()</c>, with its customizations); McpGuard registers none, since that would change how the whole
/// app answers errors. Without one, it writes what ASP.NET Core's default writer would: the same members (the status's
/// RFC 9110 type and title, a <c>traceId</c>), as <c>application/problem+json</c>, only to a client that accepts JSON.
/// </summary>
internal static class ProblemJson
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");
    private static readonly MediaTypeHeaderValue Problem = new("application/problem+json");

    public static async ValueTask<bool> TryWriteAsync(HttpContext context, ProblemDetails problem)
    {
        if (context.RequestServices?.GetService(typeof(IProblemDetailsService)) is IProblemDetailsService service)
        {
            return await service.TryWriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = problem });
        }

        if (!AcceptsJson(context.Request))
        {
            return false;
        }

        await TypedResults.Problem(WithTraceId(context, problem)).ExecuteAsync(context);
        return true;
    }

    /// <summary>Adds the <c>traceId</c> the default writer adds, unless the app's own service will write the problem.</summary>
    public static ProblemDetails WithTraceId(HttpContext context, ProblemDetails problem)
    {
        if (context.RequestServices?.GetService(typeof(IProblemDetailsService)) is null)
        {
            problem.Extensions.TryAdd("traceId", Activity.Current?.Id ?? context.TraceIdentifier);
        }

        return problem;
    }

    private static bool AcceptsJson(HttpRequest request)
    {
        var accept = request.GetTypedHeaders().Accept;
        if (accept.Count == 0)
        {
            return true;
        }

        foreach (var value in accept)
        {
            if (Json.IsSubsetOf(value) || Problem.IsSubsetOf(value))
            {
                return true;
            }
        }

        return false;
    }
}
