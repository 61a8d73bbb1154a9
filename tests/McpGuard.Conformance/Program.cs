using McpGuard.Conformance;

// The conformance server: the stateful and the stateless MCP server side by side, each on its own loopback port,
// bare or behind McpGuard (--Conformance:Guard=off|keys-off|keys-anonymous). eng/conformance.sh runs the official
// suite against it. With --Conformance:ReadyFile=<path>, the two endpoint URLs are written there once both listen.
await using var stateful = ConformanceMcpServer.Create(args, stateless: false);
await using var stateless = ConformanceMcpServer.Create(args, stateless: true);

await stateful.StartAsync();
await stateless.StartAsync();

var endpoints = $"stateful={stateful.Urls.First()}{ConformanceMcpServer.Path}\nstateless={stateless.Urls.First()}{ConformanceMcpServer.Path}\n";
var mode = GuardModes.Parse(stateful.Configuration[GuardModes.Key]);
Console.Out.Write($"mode={mode.Name()}\n{endpoints}");
if (stateful.Configuration["Conformance:ReadyFile"] is { Length: > 0 } readyFile)
{
    // Written whole, then renamed, so a reader never sees half of it.
    await File.WriteAllTextAsync(readyFile + ".tmp", endpoints);
    File.Move(readyFile + ".tmp", readyFile, overwrite: true);
}

// Either host stops on SIGTERM/SIGINT; then stop the other too.
await Task.WhenAny(stateful.WaitForShutdownAsync(), stateless.WaitForShutdownAsync());
await Task.WhenAll(stateful.StopAsync(), stateless.StopAsync());
