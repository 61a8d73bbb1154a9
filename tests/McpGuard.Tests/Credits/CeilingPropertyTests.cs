using System.Globalization;
using System.Net;
using System.Text.Json;
using CsCheck;
using McpGuard.Tests.Infrastructure;

namespace McpGuard.Tests.Credits;

/// <summary>
/// The spend ceiling is a field a gate decides on, so it is read one way only: generated values of
/// <c>params._meta["mcpguard/max_price_micro"]</c> (integers of every size and sign, fractions, exponents, strings,
/// literals, objects, arrays, duplicates, escaped and re-cased names) each get exactly one of three answers from the
/// sample, over HTTP: refused as <c>400 invalid_request</c> unless the value is a whole number of micro-units, 0 or more;
/// then <c>402 price_above_limit</c> when it is below <c>add</c>'s 800, with nothing charged; else the call, charged 800.
/// The oracle reads the generated JSON with System.Text.Json on its own, as a client's intent.
/// </summary>
public sealed class CeilingPropertyTests
{
    private const long Price = 800;

    /// <summary>300 a run; <c>MCPGUARD_CEILING_CASES</c> asks for more.</summary>
    private static readonly int Cases =
        int.TryParse(Environment.GetEnvironmentVariable("MCPGUARD_CEILING_CASES"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : 300;

    private static Gen<string> Pick(params string[] values) => Gen.Int[0, values.Length - 1].Select(i => values[i]);

    private static readonly Gen<string> Values = Gen.OneOf(
        Gen.Long.Select(v => v.ToString(CultureInfo.InvariantCulture)),
        Gen.Long[-2, 2_000].Select(v => v.ToString(CultureInfo.InvariantCulture)),
        Gen.Int[0, 2_000].Select(v => v + ".0"),
        Gen.Int[0, 2_000].Select(v => v + ".5"),
        Gen.Int[0, 9].Select(v => $"{v}e2"),
        Gen.Int[0, 9].Select(v => $"{v}E+3"),
        Gen.Const("-0"),
        Gen.Const("99999999999999999999"),
        Gen.Int[0, 2_000].Select(v => $"\"{v}\""),
        Pick("null", "true", "false", "{}", "[]", "[800]", "{\"amount\":800}"));

    private static readonly Gen<string> Names = Pick(
        "mcpguard/max_price_micro", "mcpguard/max_price_micro", "mcpguard/max_price_micro", "mcpguard/max_price_micro", "mcpguard\\/max_price_micro", "mcpguard/max_price_micr\\u006f", "Mcpguard/max_price_micro", "mcpguard/MAX_PRICE_MICRO");

    [Fact]
    public async Task Every_ceiling_is_refused_as_invalid_or_decides_the_call_as_its_number_says()
    {
        await using var host = await GuardedHost.StartSampleAsync(new Dictionary<string, string?>
        {
            ["McpGuard:RateLimits:Policies:default:Windows:0:Permits"] = "100000",
            ["McpGuard:RateLimits:Policies:default:Windows:1:Permits"] = "100000",
            ["McpGuard:RateLimits:Policies:add:Windows:0:Permits"] = "100000",
            ["McpGuard:Accounts:alice:InitialBalance"] = "1000000000",
            ["McpGuard:Accounts:alice:MonthlyCap"] = null,
        });
        var path = CreditCalls.LedgerPath(host);
        var seed = TestSeeds.Next();
        var cases = 0;
        var outcomes = new Dictionary<string, int>(StringComparer.Ordinal);

        await Gen.Select(Names, Values, Gen.Int[0, 7].Select(i => i == 0)).SampleAsync(async sample =>
        {
            var (name, value, twice) = sample;
            var requestId = $"ceiling-{Interlocked.Increment(ref cases)}";
            var meta = twice ? $"\"{name}\":{value},\"{name}\":{value}" : $"\"{name}\":{value}";
            var body = """{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":3},"_meta":{""" + meta + "}}}";

            using var response = await CreditCalls.CallAsync(host, body, requestId);
            var text = await response.Content.ReadAsStringAsync();
            var charged = LedgerFile.Rows(path, "alice").Count(r => r.RequestId == requestId);
            var expected = Expect(name, value, twice);
            outcomes[expected] = outcomes.GetValueOrDefault(expected) + 1;
            switch (expected)
            {
                case "invalid":
                    Assert.True(response.StatusCode == HttpStatusCode.BadRequest && text.Contains("\"reason\":\"invalid_request\"", StringComparison.Ordinal), $"{body} → {(int)response.StatusCode} {text}");
                    Assert.Equal(0, charged);
                    break;
                case "above":
                    Assert.True(response.StatusCode == HttpStatusCode.PaymentRequired && text.Contains("\"reason\":\"price_above_limit\"", StringComparison.Ordinal), $"{body} → {(int)response.StatusCode} {text}");
                    Assert.Equal(0, charged);
                    break;
                default:
                    Assert.True(response.StatusCode == HttpStatusCode.OK && text.Contains("\"charged_micro\":800", StringComparison.Ordinal), $"{body} → {(int)response.StatusCode} {text}");
                    Assert.Equal(1, charged);
                    break;
            }
        }, seed: seed, iter: Cases, threads: 1);

        TestReport.Write($"{nameof(CeilingPropertyTests)}: {cases} ceilings ({string.Join(", ", outcomes.OrderBy(o => o.Key).Select(o => $"{o.Key} {o.Value}"))}), seed {seed} (CsCheck_Seed)");
        Assert.All(["invalid", "above", "within"], outcome => Assert.True(outcomes.GetValueOrDefault(outcome) > 0, $"no case was {outcome}"));
    }

    /// <summary>What the ceiling a client wrote means, read apart from McpGuard: invalid, above the price, or within it.</summary>
    private static string Expect(string name, string value, bool twice)
    {
        // A duplicate member is refused whatever it holds; a name that is the ceiling's in another letter case too. An
        // escaped spelling of the exact name is the name.
        var decoded = JsonSerializer.Deserialize<string>($"\"{name}\"")!;
        if (twice || decoded != "mcpguard/max_price_micro")
        {
            return twice || string.Equals(decoded, "mcpguard/max_price_micro", StringComparison.OrdinalIgnoreCase) ? "invalid" : "within";
        }

        using var document = JsonDocument.Parse(value);
        var element = document.RootElement;
        // A whole number: no fraction or exponent, within a long, 0 or more ("-0" is 0).
        long ceiling = -1;
        var whole = element.ValueKind == JsonValueKind.Number && !value.Contains('.') && !value.Contains('e') && !value.Contains('E')
            && element.TryGetInt64(out ceiling) && ceiling >= 0;
        return !whole ? "invalid" : ceiling < Price ? "above" : "within";
    }
}
