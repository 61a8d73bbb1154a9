using System.Reflection;
using McpGuard.Errors;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace McpGuard.Tests.Errors;

/// <summary>The error catalog's invariants, its overrides, and the validation of both.</summary>
public sealed class ErrorCatalogTests
{
    private const string KnownReasons =
        "parse_error, invalid_request, payload_too_large, request_timeout, unsupported_media_type, not_acceptable, method_not_allowed, "
        + "origin_not_allowed, header_mismatch, internal_error, unauthorized, invalid_token, insufficient_scope, suspended, "
        + "rate_limited, limiter_unavailable, out_of_credit, cap_reached, price_above_limit, duplicate_request, ledger_unavailable, streamable_http_required, tool_paused, tool_archived, session_not_found, upstream_error, upstream_timeout, "
        + "invalid_parameter, not_found, forbidden, timeout";

    private const string Formats = "JsonRpc, ProblemDetails, ToolResult";

    private static readonly int[] JsonRpcStandardCodes = [-32700, -32600, -32602, -32603];

    private static List<string> ReasonConstants() =>
        typeof(McpGuardReasons)
            .GetFields(BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static)
            .Where(f => f.IsLiteral && f.FieldType == typeof(string))
            .Select(f => (string)f.GetRawConstantValue()!)
            .ToList();

    // ---- the catalog covers exactly the public reasons ----

    [Fact]
    public void Every_reason_constant_has_exactly_one_catalog_entry_and_every_entry_is_a_reason_constant()
    {
        var constants = ReasonConstants();
        var entries = McpGuardErrorCatalog.Defaults.Select(d => d.Reason).ToList();

        Assert.Equal(31, constants.Count);
        Assert.Equal(constants.Count, constants.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(entries.Count, entries.Distinct(StringComparer.Ordinal).Count());
        Assert.Equal(constants.Order(StringComparer.Ordinal), entries.Order(StringComparer.Ordinal));
        Assert.All(constants, reason => Assert.True(McpGuardErrorCatalog.IsKnownReason(reason), reason));
        Assert.All(constants, reason => Assert.Same(McpGuardErrorCatalog.Defaults.Single(d => d.Reason == reason), McpGuardErrorCatalog.Default[reason]));
        Assert.Equal(KnownReasons, string.Join(", ", entries));
    }

    [Fact]
    public void Reasons_are_snake_case_slugs()
    {
        Assert.All(McpGuardErrorCatalog.Defaults, d => Assert.Matches("^[a-z]+(_[a-z]+)*$", d.Reason));
    }

    [Fact]
    public void The_default_catalog_holds_the_defaults_unchanged()
    {
        var catalog = McpGuardErrorCatalog.Default;

        Assert.Equal(McpGuardErrorFormat.JsonRpc, catalog.DefaultFormat);
        Assert.Equal(
            McpGuardErrorCatalog.Defaults.OrderBy(d => d.Reason, StringComparer.Ordinal),
            catalog.Entries.OrderBy(d => d.Reason, StringComparer.Ordinal));
        Assert.All(McpGuardErrorCatalog.Defaults, d => Assert.False(catalog.IsMessageOverridden(d.Reason), d.Reason));
        Assert.All(McpGuardErrorCatalog.Defaults, d => Assert.Null(d.Url));
        Assert.All(McpGuardErrorCatalog.Defaults, d => Assert.Null(d.Format));
    }

    [Fact]
    public void An_unknown_reason_is_a_bug_with_a_clear_message()
    {
        var ex = Assert.Throws<KeyNotFoundException>(() => McpGuardErrorCatalog.Default["no_such_reason"]);

        Assert.Equal("McpGuard has no error catalog entry for reason 'no_such_reason'.", ex.Message);
        Assert.False(McpGuardErrorCatalog.IsKnownReason("no_such_reason"));
        Assert.False(McpGuardErrorCatalog.IsKnownReason("Parse_Error"));
    }

    [Fact]
    public void Every_entry_has_a_message_a_suggestion_and_an_error_status_or_an_in_band_200()
    {
        Assert.All(McpGuardErrorCatalog.Defaults, d =>
        {
            Assert.False(string.IsNullOrWhiteSpace(d.Message), d.Reason);
            Assert.False(string.IsNullOrWhiteSpace(d.Suggestion), d.Reason);
            Assert.True(d.StatusCode is 200 or (>= 400 and <= 599), $"{d.Reason}: {d.StatusCode}");
            if (d.StatusCode == 200)
            {
                Assert.True(d.AllowsToolResult, $"{d.Reason} is in-band only, so it must render as a tool result");
            }
        });
    }

    [Fact]
    public void Every_client_action_has_a_snake_case_wire_name()
    {
        var names = Enum.GetValues<McpGuardClientAction>().Select(McpGuardErrorDescriptor.ActionToWire).ToList();

        Assert.Equal(
            ["fix_request", "authenticate", "request_scope", "top_up", "raise_cap", "raise_limit", "back_off", "retry_later", "retry", "do_not_retry", "contact_support"],
            names);
        Assert.Throws<ArgumentOutOfRangeException>(() => McpGuardErrorDescriptor.ActionToWire((McpGuardClientAction)99));
    }

    // ---- codes ----

    [Fact]
    public void Reasons_whose_client_action_differs_never_share_a_code()
    {
        var clashes =
            from a in McpGuardErrorCatalog.Defaults
            from b in McpGuardErrorCatalog.Defaults
            where string.CompareOrdinal(a.Reason, b.Reason) < 0 && a.Code == b.Code && a.Action != b.Action
            select $"{a.Reason} ({a.Action}) and {b.Reason} ({b.Action}) share {a.Code}";

        Assert.Empty(clashes);
    }

    [Fact]
    public void Reasons_that_share_a_code_agree_on_action_and_retryability()
    {
        foreach (var group in McpGuardErrorCatalog.Defaults.GroupBy(d => d.Code))
        {
            Assert.Single(group.Select(d => d.Action).Distinct());
            Assert.Single(group.Select(d => d.Retryable).Distinct());
        }
    }

    [Fact]
    public void Each_action_maps_to_codes_no_other_action_uses()
    {
        var codesByAction = McpGuardErrorCatalog.Defaults
            .GroupBy(d => d.Action)
            .ToDictionary(g => g.Key, g => g.Select(d => d.Code).ToHashSet());

        foreach (var (action, codes) in codesByAction)
        {
            foreach (var (other, otherCodes) in codesByAction)
            {
                if (other != action)
                {
                    Assert.False(codes.Overlaps(otherCodes), $"{action} and {other} share a code: {string.Join(", ", codes.Intersect(otherCodes))}");
                }
            }
        }
    }

    [Fact]
    public void No_default_code_lies_in_the_specification_reserved_block_except_header_mismatch()
    {
        var reserved = McpGuardErrorCatalog.Defaults.Where(d => d.Code is >= -32099 and <= -32020).ToList();

        var entry = Assert.Single(reserved);
        Assert.Equal(McpGuardReasons.HeaderMismatch, entry.Reason);
        Assert.Equal(-32020, entry.Code);
    }

    [Fact]
    public void Application_codes_lie_outside_the_json_rpc_reserved_range()
    {
        var application = McpGuardErrorCatalog.Defaults
            .Where(d => !JsonRpcStandardCodes.Contains(d.Code) && d.Code != -32020)
            .ToList();

        Assert.NotEmpty(application);
        Assert.All(application, d => Assert.False(d.Code is >= -32768 and <= -32000, $"{d.Reason} uses {d.Code}"));
    }

    [Fact]
    public void Standard_json_rpc_codes_are_used_only_for_their_meaning()
    {
        Assert.Equal(-32700, McpGuardErrorCatalog.Default[McpGuardReasons.ParseError].Code);
        Assert.Equal(-32600, McpGuardErrorCatalog.Default[McpGuardReasons.InvalidRequest].Code);
        Assert.Equal(-32603, McpGuardErrorCatalog.Default[McpGuardReasons.InternalError].Code);
        Assert.Equal(
            [McpGuardReasons.InvalidParameter, McpGuardReasons.NotFound],
            McpGuardErrorCatalog.Defaults.Where(d => d.Code == -32602).Select(d => d.Reason));
    }

    // ---- overrides ----

    [Fact]
    public void Overrides_replace_code_message_suggestion_url_and_format_and_keep_the_rest()
    {
        var options = new McpGuardErrorOptions { Format = McpGuardErrorFormat.ProblemDetails };
        options.Reasons[McpGuardReasons.RateLimited] = new McpGuardReasonOptions
        {
            Code = -40029,
            Message = "Slow down",
            Suggestion = "Wait a minute.",
            Url = new Uri("https://docs.example.com/limits"),
            Format = McpGuardErrorFormat.ToolResult,
        };

        var catalog = McpGuardErrorCatalog.Create(options);

        var original = McpGuardErrorCatalog.Default[McpGuardReasons.RateLimited];
        var entry = catalog[McpGuardReasons.RateLimited];
        Assert.Equal(
            original with
            {
                Code = -40029,
                Message = "Slow down",
                Suggestion = "Wait a minute.",
                Url = new Uri("https://docs.example.com/limits"),
                Format = McpGuardErrorFormat.ToolResult,
            },
            entry);
        Assert.Equal(429, entry.StatusCode);
        Assert.True(entry.Retryable);
        Assert.Equal(McpGuardClientAction.BackOff, entry.Action);
        Assert.Equal("back_off", entry.ActionName);
        Assert.True(entry.AllowsToolResult);
        Assert.True(catalog.IsMessageOverridden(McpGuardReasons.RateLimited));
        Assert.Equal(McpGuardErrorFormat.ProblemDetails, catalog.DefaultFormat);

        // Nothing else changed, and the shared default catalog was not touched.
        Assert.All(catalog.Entries.Where(d => d.Reason != McpGuardReasons.RateLimited), d => Assert.Same(McpGuardErrorCatalog.Default[d.Reason], d));
        Assert.Equal(31, catalog.Entries.Count());
        Assert.Equal(-31201, McpGuardErrorCatalog.Default[McpGuardReasons.RateLimited].Code);
        Assert.False(McpGuardErrorCatalog.Default.IsMessageOverridden(McpGuardReasons.RateLimited));
    }

    [Fact]
    public void Each_override_property_applies_on_its_own()
    {
        var options = new McpGuardErrorOptions();
        options.Reasons[McpGuardReasons.OutOfCredit] = new McpGuardReasonOptions { Code = -40002 };
        options.Reasons[McpGuardReasons.CapReached] = new McpGuardReasonOptions { Suggestion = "Ask your admin." };
        options.Reasons[McpGuardReasons.NotFound] = new McpGuardReasonOptions { Url = new Uri("https://docs.example.com/ids") };
        options.Reasons[McpGuardReasons.Suspended] = new McpGuardReasonOptions { Format = McpGuardErrorFormat.ProblemDetails };
        options.Reasons[McpGuardReasons.Forbidden] = new McpGuardReasonOptions { Message = "No." };
        options.Reasons[McpGuardReasons.Timeout] = null!;

        var catalog = McpGuardErrorCatalog.Create(options);

        var defaults = McpGuardErrorCatalog.Default;
        Assert.Equal(defaults[McpGuardReasons.OutOfCredit] with { Code = -40002 }, catalog[McpGuardReasons.OutOfCredit]);
        Assert.Equal(defaults[McpGuardReasons.CapReached] with { Suggestion = "Ask your admin." }, catalog[McpGuardReasons.CapReached]);
        Assert.Equal(defaults[McpGuardReasons.NotFound] with { Url = new Uri("https://docs.example.com/ids") }, catalog[McpGuardReasons.NotFound]);
        Assert.Equal(defaults[McpGuardReasons.Suspended] with { Format = McpGuardErrorFormat.ProblemDetails }, catalog[McpGuardReasons.Suspended]);
        Assert.Equal(defaults[McpGuardReasons.Forbidden] with { Message = "No." }, catalog[McpGuardReasons.Forbidden]);
        Assert.Equal(defaults[McpGuardReasons.Timeout], catalog[McpGuardReasons.Timeout]);

        Assert.Equal(
            [McpGuardReasons.Forbidden],
            McpGuardErrorCatalog.Defaults.Select(d => d.Reason).Where(catalog.IsMessageOverridden));
        Assert.Equal(McpGuardErrorFormat.JsonRpc, catalog.DefaultFormat);
    }

    [Fact]
    public void Create_ignores_reasons_it_does_not_know()
    {
        var options = new McpGuardErrorOptions();
        options.Reasons["no_such_reason"] = new McpGuardReasonOptions { Message = "x" };

        var catalog = McpGuardErrorCatalog.Create(options);

        Assert.Equal(31, catalog.Entries.Count());
        Assert.False(catalog.IsMessageOverridden("no_such_reason"));
        Assert.Throws<KeyNotFoundException>(() => catalog["no_such_reason"]);
    }

    // ---- validation ----

    [Fact]
    public void Validate_accepts_the_defaults_and_sensible_overrides()
    {
        var options = new McpGuardErrorOptions { Format = McpGuardErrorFormat.ToolResult };
        options.Reasons[McpGuardReasons.RateLimited] = new McpGuardReasonOptions { Code = -40029, Message = "Slow down", Url = new Uri("https://x.example.com/") };
        options.Reasons[McpGuardReasons.CapReached] = new McpGuardReasonOptions { Code = -32019 }; // legacy block, kept for existing clients
        options.Reasons[McpGuardReasons.ToolPaused] = null!;
        var errors = new List<string>();

        McpGuardErrorCatalog.Validate(new McpGuardErrorOptions(), "McpGuard:Errors", errors);
        McpGuardErrorCatalog.Validate(options, "McpGuard:Errors", errors);

        Assert.Empty(errors);
    }

    [Theory]
    [InlineData(-32020)]
    [InlineData(-32021)]
    [InlineData(-32022)]
    [InlineData(-32042)]
    public void Validate_accepts_the_codes_the_specification_defines_in_its_reserved_block(int code)
    {
        var options = new McpGuardErrorOptions();
        options.Reasons[McpGuardReasons.HeaderMismatch] = new McpGuardReasonOptions { Code = code };
        var errors = new List<string>();

        McpGuardErrorCatalog.Validate(options, "McpGuard:Errors", errors);

        Assert.Empty(errors);
    }

    [Theory]
    [InlineData(-32099)]
    [InlineData(-32050)]
    [InlineData(-32023)]
    public void Validate_refuses_other_codes_in_the_reserved_block(int code)
    {
        var options = new McpGuardErrorOptions();
        options.Reasons[McpGuardReasons.RateLimited] = new McpGuardReasonOptions { Code = code };
        var errors = new List<string>();

        McpGuardErrorCatalog.Validate(options, "McpGuard:Errors", errors);

        Assert.Equal(
            [$"McpGuard:Errors:Reasons:rate_limited:Code {code} lies in -32099..-32020, which the MCP specification reserves; it defines only -32042, -32022, -32021, -32020 there. Application codes belong outside -32768..-32000."],
            errors);
    }

    [Fact]
    public void Validate_reports_every_problem_at_once()
    {
        var options = new McpGuardErrorOptions { Format = (McpGuardErrorFormat)42 };
        options.Reasons["no_such_reason"] = new McpGuardReasonOptions { Code = -32050, Message = "" };
        options.Reasons[McpGuardReasons.RateLimited] = new McpGuardReasonOptions { Code = -32050 };
        options.Reasons[McpGuardReasons.OutOfCredit] = new McpGuardReasonOptions { Message = "   " };
        options.Reasons[McpGuardReasons.NotFound] = new McpGuardReasonOptions { Url = new Uri("/docs/not-found", UriKind.Relative) };
        options.Reasons[McpGuardReasons.Timeout] = new McpGuardReasonOptions { Format = (McpGuardErrorFormat)99 };
        options.Reasons[McpGuardReasons.CapReached] = new McpGuardReasonOptions
        {
            Code = -32099,
            Message = "",
            Format = (McpGuardErrorFormat)7,
            Url = new Uri("cap", UriKind.Relative),
        };
        var errors = new List<string> { "an earlier problem" };

        McpGuardErrorCatalog.Validate(options, "McpGuard:Errors", errors);

        Assert.Equal(
            [
                "an earlier problem",
                $"McpGuard:Errors:Format '42' is not one of {Formats}.",
                $"McpGuard:Errors:Reasons:no_such_reason: unknown reason 'no_such_reason'. Known reasons: {KnownReasons}.",
                "McpGuard:Errors:Reasons:rate_limited:Code -32050 lies in -32099..-32020, which the MCP specification reserves; it defines only -32042, -32022, -32021, -32020 there. Application codes belong outside -32768..-32000.",
                "McpGuard:Errors:Reasons:out_of_credit:Message must not be empty.",
                "McpGuard:Errors:Reasons:not_found:Url must be an absolute URI.",
                $"McpGuard:Errors:Reasons:timeout:Format '99' is not one of {Formats}.",
                "McpGuard:Errors:Reasons:cap_reached:Code -32099 lies in -32099..-32020, which the MCP specification reserves; it defines only -32042, -32022, -32021, -32020 there. Application codes belong outside -32768..-32000.",
                "McpGuard:Errors:Reasons:cap_reached:Message must not be empty.",
                $"McpGuard:Errors:Reasons:cap_reached:Format '7' is not one of {Formats}.",
                "McpGuard:Errors:Reasons:cap_reached:Url must be an absolute URI.",
            ],
            errors);
    }

    [Fact]
    public void The_options_validator_accepts_the_defaults()
    {
        var result = new McpGuardOptionsValidator().Validate(Options.DefaultName, new McpGuardOptions());

        Assert.True(result.Succeeded, result.FailureMessage);
    }

    [Fact]
    public void The_options_validator_reports_every_problem_at_once()
    {
        var options = BrokenOptions();

        var result = new McpGuardOptionsValidator().Validate(Options.DefaultName, options);

        Assert.True(result.Failed);
        Assert.NotNull(result.Failures);
        Assert.Equal(ExpectedFailures, result.Failures);
    }

    [Fact]
    public void Resolving_invalid_options_fails_with_every_problem()
    {
        var services = new ServiceCollection();
        services.AddMcpGuard(o => Copy(BrokenOptions(), o));
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<McpGuardOptions>>().Value);

        Assert.Equal(ExpectedFailures, ex.Failures);
    }

    [Theory]
    [InlineData(1L, 1, true)]
    [InlineData(2147483591L, 1024, true)]
    [InlineData(2147483592L, 64, false)]
    [InlineData(-1L, 64, false)]
    [InlineData(1024L, 1025, false)]
    [InlineData(1024L, -1, false)]
    public void The_options_validator_checks_the_size_and_depth_bounds(long maxBody, int maxDepth, bool valid)
    {
        var options = new McpGuardOptions { MaxRequestBodySize = maxBody, MaxJsonDepth = maxDepth };

        Assert.Equal(valid, new McpGuardOptionsValidator().Validate(Options.DefaultName, options).Succeeded);
    }

    [Theory]
    [InlineData("*")]
    [InlineData("https://app.example.com")]
    [InlineData("http://localhost:5080")]
    [InlineData("http://127.0.0.1:5080")]
    public void The_options_validator_accepts_well_formed_origins(string origin)
    {
        var options = new McpGuardOptions();
        options.AllowedOrigins.Add(origin);

        Assert.True(new McpGuardOptionsValidator().Validate(Options.DefaultName, options).Succeeded);
    }

    private static readonly string[] ExpectedFailures =
    [
        "McpGuard:Path must start with '/' (got 'mcp').",
        "McpGuard:MaxRequestBodySize must be between 1 and 2147483591 bytes (got 0).",
        "McpGuard:MaxJsonDepth must be between 1 and 1024 (got 2000).",
        "McpGuard:RequestIdHeader must be a valid HTTP header name (got 'X Request Id').",
        "McpGuard:AllowedOrigins:1 must be '*' or an origin like 'https://app.example.com' with no path or trailing slash (got 'https://bad.example.com/').",
        "McpGuard:AllowedOrigins:2 must be '*' or an origin like 'https://app.example.com' with no path or trailing slash (got 'ftp://files.example.com').",
        "McpGuard:AllowedOrigins:4 must be '*' or an origin like 'https://app.example.com' with no path or trailing slash (got 'https://app.example.com/path').",
        "McpGuard:AllowedOrigins:5 must be '*' or an origin like 'https://app.example.com' with no path or trailing slash (got 'app.example.com').",
        "McpGuard:Errors:Reasons:no_such_reason: unknown reason 'no_such_reason'. Known reasons: " + KnownReasons + ".",
        "McpGuard:Errors:Reasons:rate_limited:Url must be an absolute URI.",
    ];

    private static McpGuardOptions BrokenOptions()
    {
        var options = new McpGuardOptions
        {
            Path = "mcp",
            MaxRequestBodySize = 0,
            MaxJsonDepth = 2000,
            RequestIdHeader = "X Request Id",
        };
        foreach (var origin in new[] { "https://ok.example.com", "https://bad.example.com/", "ftp://files.example.com", "*", "https://app.example.com/path", "app.example.com" })
        {
            options.AllowedOrigins.Add(origin);
        }

        options.Errors.Reasons["no_such_reason"] = new McpGuardReasonOptions();
        options.Errors.Reasons[McpGuardReasons.RateLimited] = new McpGuardReasonOptions { Url = new Uri("limits", UriKind.Relative) };
        return options;
    }

    private static void Copy(McpGuardOptions from, McpGuardOptions to)
    {
        to.Path = from.Path;
        to.MaxRequestBodySize = from.MaxRequestBodySize;
        to.MaxJsonDepth = from.MaxJsonDepth;
        to.RequestIdHeader = from.RequestIdHeader;
        foreach (var origin in from.AllowedOrigins)
        {
            to.AllowedOrigins.Add(origin);
        }

        foreach (var (reason, reasonOptions) in from.Errors.Reasons)
        {
            to.Errors.Reasons[reason] = reasonOptions;
        }
    }
}
