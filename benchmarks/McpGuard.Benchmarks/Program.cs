using BenchmarkDotNet.Running;
using McpGuard.Benchmarks;

// dotnet run -c Release --project benchmarks/McpGuard.Benchmarks -- --filter '*Ledger*'
// dotnet run -c Release --project benchmarks/McpGuard.Benchmarks -- soak sqlite 32 5
if (args.Length > 0 && args[0] == "soak")
{
    return await LedgerSoak.RunAsync(args);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
