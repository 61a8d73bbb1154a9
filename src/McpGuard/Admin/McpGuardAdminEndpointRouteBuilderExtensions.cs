using System.Diagnostics.CodeAnalysis;
using McpGuard;
using McpGuard.Admin;
using McpGuard.Errors;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Builder;

/// <summary>Maps McpGuard's admin API and its dashboard, a page on top of it.</summary>
public static partial class McpGuardAdminEndpointRouteBuilderExtensions
{
    /// <summary>The OpenAPI document name (group name) the admin endpoints carry: <c>builder.Services.AddOpenApi("mcpguard-admin")</c> describes them.</summary>
    internal const string DocumentName = "mcpguard-admin";

    /// <summary>
    /// Maps the admin API under <paramref name="prefix"/>: account top-ups, adjustments, caps, suspension and ledger pages,
    /// API keys created and revoked at run time, and tool pause, archive and restore. JSON in and out (snake_case);
    /// every error is problem+json. The group requires an authorization policy: the admin key scheme
    /// (<see cref="McpGuardSchemes.AdminKey"/>: <c>McpGuard:Admin:KeyHash</c>, sent as <c>Authorization: Bearer &lt;admin key&gt;</c>),
    /// or the app's policy named in <c>McpGuard:Admin:Policy</c>; with neither configured every admin request gets 403.
    /// The endpoints are in the OpenAPI group <c>mcpguard-admin</c>, so <c>AddOpenApi("mcpguard-admin")</c> documents them and
    /// the app's own documents do not list them.
    /// </summary>
    /// <returns>The group, for further conventions (the admin checks still run first).</returns>
    /// <exception cref="InvalidOperationException"><c>AddMcpGuard</c> or <c>AddAuthorization</c> was not called.</exception>
    public static RouteGroupBuilder MapMcpGuardAdmin(this IEndpointRouteBuilder endpoints, [StringSyntax("Route")] string prefix = "/admin")
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentException.ThrowIfNullOrWhiteSpace(prefix);
        McpGuardMarkerService.EnsureRegistered(endpoints.ServiceProvider);
        if (endpoints.ServiceProvider.GetService<IAuthorizationHandlerProvider>() is null)
        {
            // McpGuard does not add authorization to the app (WebApplication would then run its middleware on every request).
            throw new InvalidOperationException(
                "The admin API is protected by an authorization policy, and the app has no authorization services. Call builder.Services.AddAuthorization() in Program.cs before building the app.");
        }


        var services = endpoints.ServiceProvider;
        var group = endpoints.MapGroup(prefix)
            .RequireAuthorization(new AdminAuthorizeData(services))
            .AddEndpointFilter((invocation, next) => invocation.HttpContext.RequestServices.GetRequiredService<AdminApi>().FilterAsync(invocation, next))
            .WithGroupName(DocumentName)
            .WithTags("McpGuard admin")
            .ProducesProblem(Status(McpGuardAdminReasons.Unauthorized))
            .ProducesProblem(Status(McpGuardAdminReasons.Forbidden));

        var accounts = group.MapGroup("/accounts/{id}").WithMetadata(AdminAccountRoute.Instance);
        accounts.MapPost("/topup", static (HttpContext context, string id, AdminBody<TopUpRequest> body, AdminApi api) => api.TopUpAsync(context, id, body.Value!))
            .Money("McpGuardAdminTopUp", "Top up an account", typeof(TopUpRequest));
        accounts.MapPost("/adjust", static (HttpContext context, string id, AdminBody<AdjustRequest> body, AdminApi api) => api.AdjustAsync(context, id, body.Value!))
            .Money("McpGuardAdminAdjust", "Adjust an account's balance either way, with a note", typeof(AdjustRequest))
            .ProducesProblem(Status(McpGuardAdminReasons.NotFound));
        accounts.MapGet("", static (HttpContext context, string id, AdminApi api) => api.GetAccountAsync(context, id))
            .Money("McpGuardAdminGetAccount", "Show an account: balance, cap, spend this month, free calls left and status", request: null)
            .ProducesProblem(Status(McpGuardAdminReasons.NotFound));
        accounts.MapPut("/cap", static (HttpContext context, string id, AdminBody<SetCapRequest> body, AdminApi api) => api.SetCapAsync(context, id, body.Value!))
            .Money("McpGuardAdminSetCap", "Set or clear an account's monthly spending cap", typeof(SetCapRequest))
            .ProducesProblem(Status(McpGuardAdminReasons.NotFound));
        accounts.MapPost("/suspend", static (HttpContext context, string id, AdminApi api) => api.SetSuspendedAsync(context, id, suspended: true))
            .Describe("McpGuardAdminSuspend", "Suspend an account")
            .ProducesValidationProblem()
            .ProducesProblem(Status(McpGuardAdminReasons.NotFound));
        accounts.MapPost("/reactivate", static (HttpContext context, string id, AdminApi api) => api.SetSuspendedAsync(context, id, suspended: false))
            .Describe("McpGuardAdminReactivate", "Reactivate an account suspended through the admin API")
            .ProducesValidationProblem()
            .ProducesProblem(Status(McpGuardAdminReasons.NotFound))
            .ProducesProblem(Status(McpGuardAdminReasons.Conflict));
        accounts.MapGet("/ledger", static (HttpContext context, string id, AdminLedgerQuery query, AdminApi api) => api.GetLedgerAsync(context, id, query))
            .Money("McpGuardAdminGetLedger", "Page through an account's ledger, newest first (limit 1-500, before: a cursor)", request: null)
            .ProducesProblem(Status(McpGuardAdminReasons.NotFound));

        group.MapGet("/ledger/verify", static (HttpContext context, AdminApi api) => api.VerifyLedgerAsync(context))
            .Money("McpGuardAdminVerifyLedger", "Check that every account's balance is what its ledger rows add up to", request: null);

        group.MapGet("/usage", static (HttpContext context, AdminWindowQuery window, AdminApi api) => api.GetUsageAsync(context, window))
            .Money("McpGuardAdminUsage", "Charges, free calls and refunds from the ledger over the last hour or day (window=hour|day): per bucket, tool and account", request: null);
        group.MapGet("/traffic", static (AdminWindowQuery window, AdminApi api) => api.GetTraffic(window))
            .Describe("McpGuardAdminTraffic", "This instance's guarded requests over the last hour or day (window=hour|day): passed and refused per bucket, reason, tool and method")
            .ProducesValidationProblem();
        group.MapGet("/tools", static (HttpContext context, AdminApi api) => api.GetToolsAsync(context))
            .Describe("McpGuardAdminTools", "The tools of McpGuard:Tools: price, scopes, configured status and the status in force");

        group.MapPost("/keys", static (HttpContext context, AdminBody<CreateKeyRequest> body, AdminApi api) => api.CreateKeyAsync(context, body.Value!))
            .Describe("McpGuardAdminCreateKey", "Create an API key for an account (its plaintext is shown once)")
            .Body(typeof(CreateKeyRequest))
            .ProducesProblem(Status(McpGuardAdminReasons.Conflict));
        group.MapPost("/keys/{id}/revoke", static (HttpContext context, string id, AdminApi api) => api.RevokeKeyAsync(context, id))
            .Describe("McpGuardAdminRevokeKey", "Revoke an API key created through the admin API")
            .ProducesProblem(Status(McpGuardAdminReasons.NotFound))
            .ProducesProblem(Status(McpGuardAdminReasons.Conflict));

        group.MapPost("/tools/{name}/pause", static (HttpContext context, string name, AdminApi api) => api.SetToolStatusAsync(context, name, McpGuardToolStatus.Paused))
            .Describe("McpGuardAdminPauseTool", "Pause a tool (calls get 503 tool_paused)")
            .ProducesProblem(Status(McpGuardAdminReasons.NotFound));
        group.MapPost("/tools/{name}/archive", static (HttpContext context, string name, AdminApi api) => api.SetToolStatusAsync(context, name, McpGuardToolStatus.Archived))
            .Describe("McpGuardAdminArchiveTool", "Archive a tool (calls get 410 tool_archived)")
            .ProducesProblem(Status(McpGuardAdminReasons.NotFound));
        group.MapPost("/tools/{name}/restore", static (HttpContext context, string name, AdminApi api) => api.SetToolStatusAsync(context, name, null))
            .Describe("McpGuardAdminRestoreTool", "Restore a tool to the status in configuration")
            .ProducesProblem(Status(McpGuardAdminReasons.NotFound));
        return group;
    }

    /// <summary>The status of an admin reason, from the error catalog (the only place statuses are written down).</summary>
    private static int Status(string reason) => McpGuardErrorCatalog.Admin(reason).StatusCode;

    private static RouteHandlerBuilder Describe(this RouteHandlerBuilder endpoint, string name, string summary) =>
        endpoint.WithName(name).WithSummary(summary).WithDisplayName($"McpGuard admin: {summary}");

    /// <summary>The JSON body's record, for OpenAPI (the body is bound by <see cref="AdminBody{T}"/>, which the description cannot see).</summary>
    private static RouteHandlerBuilder Body(this RouteHandlerBuilder endpoint, Type request) =>
        endpoint.WithMetadata(new RequestBodyMetadata(request)).ProducesValidationProblem()
            .ProducesProblem(Status(McpGuardAdminReasons.PayloadTooLarge))
            .ProducesProblem(Status(McpGuardAdminReasons.UnsupportedMediaType));

    /// <summary>An endpoint on the credit ledger: 409 while credits are off.</summary>
    private static RouteHandlerBuilder Money(this RouteHandlerBuilder endpoint, string name, string summary, Type? request)
    {
        endpoint.Describe(name, summary).WithMetadata(AdminNeedsCredits.Instance).ProducesValidationProblem().ProducesProblem(Status(McpGuardAdminReasons.Conflict));
        return request is null ? endpoint : endpoint.Body(request);
    }

    /// <summary>
    /// The request record, with no content types: <c>Accepts(type, "application/json")</c> would also make routing answer
    /// other content types with an empty 415 before the admin API could say why in problem+json. With none listed, routing
    /// leaves the request alone and OpenAPI documents the body as JSON.
    /// </summary>
    private sealed class RequestBodyMetadata(Type requestType) : IAcceptsMetadata
    {
        public IReadOnlyList<string> ContentTypes => [];

        public Type? RequestType => requestType;

        public bool IsOptional => false;
    }

    /// <summary>
    /// The group's authorization, read when the endpoints first authorize a request (after the host validated the
    /// options): the app's policy named in <c>McpGuard:Admin:Policy</c>, else McpGuard's admin key policy. The options
    /// are not read while the app is mapped: invalid options must fail when the host starts, listing every problem.
    /// </summary>
    private sealed class AdminAuthorizeData(IServiceProvider services) : IAuthorizeData
    {
        public string? Policy
        {
            get => services.GetRequiredService<McpGuardStateProvider>().Current.Options.Admin.Policy ?? AdminKeyAuthenticationHandler.PolicyName;
            set => throw new NotSupportedException();
        }

        public string? Roles { get => null; set => throw new NotSupportedException(); }

        public string? AuthenticationSchemes { get => null; set => throw new NotSupportedException(); }
    }
}
