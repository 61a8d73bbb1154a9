using System.Diagnostics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Net.Http.Headers;

namespace McpGuard.Errors;

/// <summary>
/// Writes McpGuard's problem+json bodies. Through the app's <see cref="IProblemDetailsService"/> when it registered one
/// (<c>AddProblemDetails()</c>: its customizations apply); otherwise as ASP.NET Core's default problem-details writer would:
/// the same shape, a <c>traceId</c>, and only to a client whose <c>Accept</c> takes JSON. McpGuard never registers the
/// service itself: that would change how the app's own errors render.
/// </summary>
internal static class McpGuardProblems
{
    private static readonly MediaTypeHeaderValue Json = new("application/json");
    private static readonly MediaTypeHeaderValue ProblemJson = new("application/problem+json");

    /// <summary>Writes <paramref name="problem"/>; false when the client accepts no JSON (the caller then answers another way).</summary>
    public static async ValueTask<bool> TryWriteAsync(HttpContext context, ProblemDetails problem)
    {
        if (context.RequestServices?.GetService<IProblemDetailsService>() is { } service)
        {
            return await service.TryWriteAsync(new ProblemDetailsContext { HttpContext = context, ProblemDetails = problem });
        }

        if (!AcceptsJson(context.Request))
        {
            return false;
        }

        problem.Extensions.TryAdd("traceId", Activity.Current?.Id ?? context.TraceIdentifier);
        await TypedResults.Problem(problem).ExecuteAsync(context);
        return true;
    }

    /// <summary>Writes <paramref name="problem"/>, as plain JSON when the client accepts no JSON at all.</summary>
    public static async Task WriteAsync(HttpContext context, ProblemDetails problem)
    {
        if (!await TryWriteAsync(context, problem))
        {
            problem.Extensions.TryAdd("traceId", Activity.Current?.Id ?? context.TraceIdentifier);
            await TypedResults.Problem(problem).ExecuteAsync(context);
        }
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
            if (Json.IsSubsetOf(value) || ProblemJson.IsSubsetOf(value))
            {
                return true;
            }
        }

        return false;
    }
}
