using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Text.Json.Serialization;

namespace McpGuard.Admin;

// The admin API's request bodies. Names are snake_case on the wire ([JsonPropertyName], so the app's JSON options never
// rename them); [Description] is both the OpenAPI description and the requirement an error message quotes; the
// DataAnnotations attributes are run by Microsoft.Extensions.Validation (see AdminValidation).

/// <summary>POST /accounts/{id}/topup: money in.</summary>
internal sealed record TopUpRequest
{
    [JsonPropertyName("amount_micro"), Description(AdminInput.PositiveAmount)]
    [Required(ErrorMessage = "Required: " + AdminInput.PositiveAmount + ".")]
    [WholeNumber(AdminInput.PositiveAmount, Minimum = 1)]
    public long? AmountMicro { get; init; }

    [JsonPropertyName("note"), Description(AdminInput.OptionalNote)]
    [Note(AdminInput.OptionalNote)]
    public string? Note { get; init; }
}

/// <summary>POST /accounts/{id}/adjust: a correction either way, with the reason for it.</summary>
internal sealed record AdjustRequest
{
    [JsonPropertyName("amount_micro"), Description(AdminInput.NonZeroAmount)]
    [Required(ErrorMessage = "Required: " + AdminInput.NonZeroAmount + ".")]
    [WholeNumber(AdminInput.NonZeroAmount, NonZero = true)]
    public long? AmountMicro { get; init; }

    [JsonPropertyName("note"), Description(AdminInput.RequiredNote)]
    [Required(AllowEmptyStrings = true, ErrorMessage = "Required: " + AdminInput.RequiredNote + ".")]
    [Note(AdminInput.RequiredNote, NotBlank = true)]
    public string? Note { get; init; }
}

/// <summary>PUT /accounts/{id}/cap: the monthly cap; the member must be present, null clears the cap.</summary>
internal sealed record SetCapRequest
{
    [JsonPropertyName("monthly_cap_micro"), Description(AdminInput.Cap), JsonRequired]
    [WholeNumber(AdminInput.Cap, Minimum = 0)]
    public long? MonthlyCapMicro { get; init; }
}

/// <summary>POST /keys: a run-time API key for an account.</summary>
internal sealed record CreateKeyRequest
{
    [JsonPropertyName("account"), Description(AdminInput.AccountId)]
    [Required(AllowEmptyStrings = true, ErrorMessage = "Required: " + AdminInput.AccountId + ".")]
    [AccountId]
    public string? Account { get; init; }

    [JsonPropertyName("scopes"), Description(AdminInput.Scopes)]
    [Required(ErrorMessage = "Required: " + AdminInput.Scopes + ".")]
    [ScopeTokens]
    public string?[]? Scopes { get; init; }

    [JsonPropertyName("expires_at"), Description(AdminInput.ExpiresAt)]
    [FutureTime]
    public string? ExpiresAt { get; init; }

    [JsonPropertyName("id"), Description(AdminInput.KeyId + ", or null")]
    [KeyId]
    public string? Id { get; init; }

    [JsonPropertyName("max_price_micro"), Description(AdminInput.MaxPrice)]
    [WholeNumber(AdminInput.MaxPrice, Minimum = 0)]
    public long? MaxPriceMicro { get; init; }
}
