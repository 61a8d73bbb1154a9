using McpGuard.Sample;

await SampleServer.Create(args).RunAsync();
