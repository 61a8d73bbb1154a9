using System.ComponentModel.DataAnnotations;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;

namespace McpGuard.Admin;

/// <summary>
/// A rule on a value that is present and of the right type (absence is <see cref="RequiredAttribute"/>'s business):
/// refused as "Must be &lt;requirement&gt; (got &lt;value&gt;)." so that the message says what was sent.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
internal abstract class AdminRuleAttribute(string requirement) : ValidationAttribute
{
    public string Requirement { get; } = requirement;

    protected abstract bool Accepts(object value, ValidationContext context);

    protected override ValidationResult? IsValid(object? value, ValidationContext validationContext) =>
        value is null || Accepts(value, validationContext)
            ? ValidationResult.Success
            : new ValidationResult(Must(Requirement, value));

    public static string Must(string requirement, object value) => $"Must be {requirement} (got {Describe(value)}).";

    private static string Describe(object value) => value switch
    {
        string text => $"\"{AdminInput.Truncate(text)}\"",
        IFormattable number => number.ToString(null, CultureInfo.InvariantCulture),
        _ => "a value",
    };
}

/// <summary>A whole number of micro-units within bounds (money is <see cref="long"/> micro-units everywhere).</summary>
internal sealed class WholeNumberAttribute(string requirement) : AdminRuleAttribute(requirement)
{
    public long Minimum { get; set; } = long.MinValue;

    public bool NonZero { get; set; }

    protected override bool Accepts(object value, ValidationContext context) =>
        value is long number && number >= Minimum && !(NonZero && number == 0);
}

/// <summary>A note of at most <see cref="AdminInput.MaxNoteLength"/> characters; with <see cref="NotBlank"/>, one that says something.</summary>
internal sealed class NoteAttribute(string requirement) : AdminRuleAttribute(requirement)
{
    public bool NotBlank { get; set; }

    protected override bool Accepts(object value, ValidationContext context) =>
        value is string note && note.Length <= AdminInput.MaxNoteLength && !(NotBlank && string.IsNullOrWhiteSpace(note));
}

/// <summary>An account id, as the guard and the ledger accept it.</summary>
internal sealed class AccountIdAttribute() : AdminRuleAttribute(AdminInput.AccountId)
{
    protected override bool Accepts(object value, ValidationContext context) => value is string id && AdminInput.IsAccountId(id);
}

/// <summary>A key id a client may choose.</summary>
internal sealed class KeyIdAttribute() : AdminRuleAttribute(AdminInput.KeyId + ", or null")
{
    protected override bool Accepts(object value, ValidationContext context) => value is string id && AdminInput.IsKeyId(id);
}

/// <summary>A time with an explicit zone, later than now (the clock is the app's <see cref="TimeProvider"/>).</summary>
internal sealed class FutureTimeAttribute() : AdminRuleAttribute(AdminInput.ExpiresAt)
{
    protected override bool Accepts(object value, ValidationContext context) =>
        value is string text
        && AdminInput.TryParseTime(text, out var time)
        && time > (context.GetService<TimeProvider>() ?? TimeProvider.System).GetUtcNow();
}

/// <summary>
/// Each item of the list is a scope token. The list itself always passes; <see cref="AdminValidation"/> applies
/// <see cref="IsItemValid"/> to every item, so that each bad one is named by its index (<c>scopes[2]</c>).
/// </summary>
internal sealed class ScopeTokensAttribute() : AdminRuleAttribute(AdminInput.ScopeToken)
{
    public static bool IsItemValid(string? item) => item is null || Auth.AuthOptionsValidation.IsScopeToken(item);

    protected override bool Accepts(object value, ValidationContext context) => true;
}
