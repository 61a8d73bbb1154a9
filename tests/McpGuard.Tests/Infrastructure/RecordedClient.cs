using System.Collections.Concurrent;
using System.Net;
using System.Text.Json.Nodes;
using ModelContextProtocol.Client;

namespace McpGuard.Tests.Infrastructure;

/// <summary>
/// The real C# SDK client (<see cref="McpClient"/> over <see cref="HttpClientTransport"/>, Streamable HTTP) against a
/// <see cref="GuardedHost"/>, with every HTTP exchange it makes recorded in <see cref="Wire"/>, so a test can assert
/// both what the client reports and the exact status, headers and body it was sent.
/// </summary>
public sealed class RecordedClient : IAsyncDisposable
{
    private RecordedClient(McpClient client, WireLog wire)
    {
        Client = client;
        Wire = wire;
    }

    public McpClient Client { get; }

    public WireLog Wire { get; }

    /// <summary>
    /// Connects with <paramref name="apiKey"/> (none when null). <paramref name="protocolVersion"/> pins the version
    /// the client asks for and accepts (<see cref="McpClientOptions.ProtocolVersion"/>): <c>2025-11-25</c> makes it use
    /// the <c>initialize</c> handshake, <c>2026-07-28</c> per-request metadata; null is the SDK's default (it prefers
    /// <c>2026-07-28</c> and falls back to the handshake when the server refuses it). Connection failures propagate;
    /// <paramref name="wire"/> (new when null) has the exchanges made until then.
    /// </summary>
    public static Task<RecordedClient> ConnectAsync(GuardedHost host, string? apiKey, string? protocolVersion, WireLog? wire = null) =>
        ConnectAsync(host.McpEndpoint, apiKey, new McpClientOptions { ProtocolVersion = protocolVersion }, wire);

    /// <summary>
    /// Connects to any MCP <paramref name="endpoint"/> with <paramref name="apiKey"/> (none when null) and the client's
    /// <paramref name="options"/> (its protocol version, capabilities and handlers). Connection failures propagate.
    /// </summary>
    public static async Task<RecordedClient> ConnectAsync(
        Uri endpoint, string? apiKey, McpClientOptions options, WireLog? wire = null, CancellationToken cancellationToken = default)
    {
        wire ??= new WireLog();
        var http = new HttpClient(new Recorder(wire) { InnerHandler = new SocketsHttpHandler() });
        var transport = new HttpClientTransport(
            new HttpClientTransportOptions
            {
                Endpoint = endpoint,
                TransportMode = HttpTransportMode.StreamableHttp,
                AdditionalHeaders = apiKey is null ? null : new Dictionary<string, string> { ["Authorization"] = $"Bearer {apiKey}" },
            },
            http,
            loggerFactory: null,
            ownsHttpClient: true);
        return new RecordedClient(await McpClient.CreateAsync(transport, options, cancellationToken: cancellationToken), wire);
    }

    public async ValueTask DisposeAsync() => await Client.DisposeAsync();

    private sealed class Recorder(WireLog wire) : DelegatingHandler
    {
        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var body = request.Content is null ? null : await request.Content.ReadAsStringAsync(cancellationToken);
            var response = await base.SendAsync(request, cancellationToken);
            var copy = new HttpResponseMessage(response.StatusCode) { Version = response.Version };
            foreach (var (name, values) in response.Headers.NonValidated)
            {
                copy.Headers.TryAddWithoutValidation(name, values);
            }

            // A success body may be a stream the client is still reading; every other body is read here, once, for both.
            var text = response.IsSuccessStatusCode ? "" : await response.Content.ReadAsStringAsync(cancellationToken);
            copy.Content = new StringContent(text);
            copy.Content.Headers.Clear();
            foreach (var (name, values) in response.Content.Headers.NonValidated)
            {
                copy.Content.Headers.TryAddWithoutValidation(name, values);
            }

            wire.Add(new WireExchange(request.Method.Method, body is null ? null : JsonNode.Parse(body), copy));
            return response;
        }
    }
}

/// <summary>The HTTP exchanges of one client, in the order they completed.</summary>
public sealed class WireLog
{
    private readonly ConcurrentQueue<WireExchange> _exchanges = new();

    public IReadOnlyList<WireExchange> Exchanges => [.. _exchanges];

    /// <summary>The one exchange for <c>tools/call</c> of <paramref name="tool"/> (there must be exactly one).</summary>
    public WireExchange ToolCall(string tool) =>
        Assert.Single(Exchanges, e => e.McpMethod == "tools/call" && e.Request?["params"]?["name"]?.GetValue<string>() == tool);

    /// <summary>The one exchange for <paramref name="method"/> (there must be exactly one).</summary>
    public WireExchange OnlyCall(string method) => Assert.Single(Exchanges, e => e.McpMethod == method);

    internal void Add(WireExchange exchange) => _exchanges.Enqueue(exchange);
}

/// <summary>
/// One HTTP exchange: the request's HTTP method and JSON body (null for GET and DELETE), and a copy of the response
/// with its headers, and its body when the status is not 2xx.
/// </summary>
public sealed record WireExchange(string HttpMethod, JsonNode? Request, HttpResponseMessage Response)
{
    public string? McpMethod => Request?["method"]?.GetValue<string>();

    /// <summary>The JSON-RPC id of the request (an integer, as the C# client numbers them).</summary>
    public int Id => Request!["id"]!.GetValue<int>();

    public HttpStatusCode Status => Response.StatusCode;

    /// <summary>The single value of a response header, or null when there is none.</summary>
    public string? Header(string name) =>
        Response.Headers.NonValidated.TryGetValues(name, out var values) ? Assert.Single(values) : null;
}
