using BenchmarkDotNet.Running;
using McpGuard.Benchmarks;

// dotnet run -c Release --project benchmarks/McpGuard.Benchmarks -- --filter '*Ledger*'
// MCPGUARD_BENCH_POSTGRES='Host=127.0.0.1;Port=55432;Username=postgres' dotnet run -c Release --project benchmarks/McpGuard.Benchmarks -- --filter '*ReserveSettle*'
// MCPGUARD_BENCH_POSTGRES='Host=127.0.0.1;Port=55432;Username=postgres' dotnet run -c Release --project benchmarks/McpGuard.Benchmarks -- --filter '*PostgreSqlLedger*'
// dotnet run -c Release --project benchmarks/McpGuard.Benchmarks -- soak sqlite 32 5
// dotnet run -c Release --project benchmarks/McpGuard.Benchmarks -- chain all 100000 7 types   (add "listen" to listen to meter McpGuard)
// dotnet run -c Release --project benchmarks/McpGuard.Benchmarks -- generate-ledger /tmp/ledger.db 10000000
// dotnet run -c Release --project benchmarks/McpGuard.Benchmarks -- guard-floor --urls http://127.0.0.1:5703 --ledger /tmp/floor.db
// dotnet run -c Release --project benchmarks/McpGuard.Benchmarks -- bare-proxy --urls http://127.0.0.1:5702 --upstream http://127.0.0.1:5701
if (args.Length > 0 && args[0] == "soak")
{
    return await LedgerSoak.RunAsync(args);
}

if (args.Length > 0 && args[0] == "generate-ledger")
{
    return await LedgerGenerator.RunAsync(args);
}

if (args.Length > 0 && args[0] == "bare-proxy")
{
    return await BareProxy.RunAsync(args);
}

if (args.Length > 0 && args[0] == "guard-floor")
{
    return await GuardFloor.RunAsync(args);
}

if (args.Length > 0 && args[0] == "chain")
{
    return GateChainProfile.Run(args);
}

BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
return 0;
