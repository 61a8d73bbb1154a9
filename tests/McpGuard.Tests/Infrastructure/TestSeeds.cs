using CsCheck;

namespace McpGuard.Tests.Infrastructure;

/// <summary>
/// Seeds for property-based tests: a fresh one each run, or the one in <c>CsCheck_Seed</c> to replay a run. Tests print
/// the seed they used, so any run can be repeated exactly.
/// </summary>
internal static class TestSeeds
{
    public static string Next() =>
        Environment.GetEnvironmentVariable("CsCheck_Seed") is { Length: > 0 } fixedSeed
            ? fixedSeed
            : new PCG((uint)Random.Shared.Next(), (ulong)Random.Shared.NextInt64()).ToString();
}

/// <summary>
/// Lines a test wants in the CI log whatever its outcome (case counts, seeds): appended to the file named by
/// <c>MCPGUARD_TEST_REPORT</c> when it is set (.ci/run sets it and prints the file after the tests).
/// </summary>
internal static class TestReport
{
    private static readonly object Gate = new();

    public static void Write(string line)
    {
        if (Environment.GetEnvironmentVariable("MCPGUARD_TEST_REPORT") is { Length: > 0 } path)
        {
            lock (Gate)
            {
                File.AppendAllText(path, line + Environment.NewLine);
            }
        }
    }
}
