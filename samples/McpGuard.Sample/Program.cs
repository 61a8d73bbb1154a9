using McpGuard.Sample;

if (SampleCommands.TryRun(args, Console.Out))
{
    return;
}

await SampleServer.Create(args).RunAsync();
