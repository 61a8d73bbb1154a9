using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using System.Text.Json;
using McpGuard.Protocol;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace McpGuard.Tests.Protocol;

/// <summary>
/// The front door reads a body of up to <see cref="FrontDoor.InPlaceLimit"/> bytes with a <c>Content-Length</c> in place
/// (left in Kestrel's request pipe, read and not consumed) and copies a larger or chunked one, or any body whose pipe is
/// not Kestrel's own. On both sides of the limit, over HTTP/1.1 and HTTP/2, an endpoint reading the pipe (the SDK's
/// <c>MapMcp()</c>) or the stream must read exactly the bytes the client sent and the guard parsed, and the connection
/// must go on serving the requests that follow, whether or not anyone read the body, and whatever became of the request.
/// </summary>
public sealed class BodyInPlaceTests : IAsyncLifetime
{
    private const string SkipHeader = "X-Test-Answer-Without-Reading";

    private readonly ConcurrentDictionary<string, byte[]> _endpointRead = new();
    private readonly ConcurrentDictionary<string, bool> _inPlace = new();
    private GuardedHost _host = null!;

    public async Task InitializeAsync() => _host = await StartAsync(http2: false);

    private Task<GuardedHost> StartAsync(bool http2) =>
        GuardedHost.StartMcpAsync(
            server => server.WithTools<DifferentialTools>(),
            Configuration(),
            build: builder =>
            {
                if (http2)
                {
                    // HTTP/2 without TLS: clients must know in advance (h2c with prior knowledge).
                    builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureEndpointDefaults(endpoint => endpoint.Protocols = HttpProtocols.Http2));
                }
            },
            beforeMcp: app => app.Use(async (context, next) =>
            {
                if (context.Request.Headers.ContainsKey(SkipHeader))
                {
                    // An endpoint that answers without reading the body at all.
                    context.Response.StatusCode = StatusCodes.Status204NoContent;
                    return;
                }

                // What the endpoint will read, looked at without consuming it: MapMcp then reads the same pipe.
                _endpointRead[context.TraceIdentifier] = await PeekAsync(context.Request.BodyReader);
                _inPlace[context.TraceIdentifier] = context.Features.Get<McpGuardFeature>()?.BodyInPlace is not null;
                await next(context);
            }));

    public async Task DisposeAsync() => await _host.DisposeAsync();

    /// <summary>Bob's key with <c>tools:basic</c>, which <c>echo</c> needs.</summary>
    private static Dictionary<string, string?> Configuration() =>
        GuardConfiguration.ApiKeys(GuardConfiguration.Bob("tools:basic")).With(new Dictionary<string, string?>
        {
            ["McpGuard:Auth:AuthorizationServers:0"] = "http://127.0.0.1/issuer",
            ["McpGuard:Tools:echo:Scopes:0"] = "tools:basic",
        });

    [Theory]
    [InlineData(300, false)]
    [InlineData(5_000, false)]     // over one of Kestrel's 4 KB memory blocks: the guard parses a copy of the segments
    [InlineData(12_345, false)]
    [InlineData(FrontDoor.InPlaceLimit - 1, false)]
    [InlineData(FrontDoor.InPlaceLimit, false)]
    [InlineData(FrontDoor.InPlaceLimit + 1, false)] // copied from here on
    [InlineData(100_000, false)]
    [InlineData(300, true)]        // chunked: no Content-Length, always copied
    [InlineData(40_000, true)]
    public async Task The_endpoint_reads_exactly_the_bytes_the_client_sent(int size, bool chunked)
    {
        var requestId = $"in-place-{size}-{chunked}-{Guid.NewGuid():N}";
        var (body, message) = EchoCall(size);
        Assert.Equal(size, body.Length);

        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new("application/json");
        request.Headers.Accept.ParseAdd("application/json, text/event-stream");
        request.Headers.Authorization = new("Bearer", DemoKeys.Bob);
        request.Headers.Add("X-Request-Id", requestId);
        if (chunked)
        {
            request.Headers.TransferEncodingChunked = true;
        }
        else
        {
            request.Content.Headers.ContentLength = size;
        }

        using var response = await _host.Client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var answer = await Sse.ReadSingleMessageAsync(response);
        Assert.Equal(7, answer.GetProperty("id").GetInt32());
        Assert.Equal(message, answer.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
        Assert.Equal(body, _endpointRead[requestId]);
        Assert.Equal(!chunked && size <= FrontDoor.InPlaceLimit, _inPlace[requestId]);
    }

    [Fact]
    public async Task Over_http2_the_endpoint_reads_exactly_the_bytes_the_client_sent_and_the_stream_after_an_unread_body_is_served()
    {
        await using var host = await StartAsync(http2: true);
        using var client = new HttpClient { BaseAddress = host.BaseAddress };

        foreach (var size in new[] { 300, 12_345, FrontDoor.InPlaceLimit, FrontDoor.InPlaceLimit + 1, 100_000 })
        {
            var requestId = $"h2-{size}-{Guid.NewGuid():N}";
            var (body, message) = EchoCall(size);
            using var response = await client.SendAsync(EchoRequest(body, requestId, DemoKeys.Bob));

            Assert.Equal(HttpVersion.Version20, response.Version);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var answer = await Sse.ReadSingleMessageAsync(response);
            Assert.Equal(message, answer.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
            Assert.Equal(body, _endpointRead[requestId]);
            Assert.Equal(size <= FrontDoor.InPlaceLimit, _inPlace[requestId]);
        }

        // On the same connection: a body the guard read in place and refused, one nobody read, then one served.
        var (small, echoed) = EchoCall(500);
        using var refused = await client.SendAsync(EchoRequest(small, $"h2-refused-{Guid.NewGuid():N}", apiKey: null));
        using var skipping = EchoRequest(small, $"h2-unread-{Guid.NewGuid():N}", DemoKeys.Bob);
        skipping.Headers.Add(SkipHeader, "1");
        using var unread = await client.SendAsync(skipping);
        using var served = await client.SendAsync(EchoRequest(small, $"h2-served-{Guid.NewGuid():N}", DemoKeys.Bob));

        Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, unread.StatusCode);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        var last = await Sse.ReadSingleMessageAsync(served);
        Assert.Equal(echoed, last.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
    }

    /// <summary>Which servers, and which body streams, the in-place read may trust.</summary>
    public enum Server
    {
        /// <summary>Kestrel, its own request pipe and stream: a small body is read in place.</summary>
        Kestrel,

        /// <summary>Kestrel with <c>EnableBuffering</c> before the guard: the body stream is no longer the server's.</summary>
        KestrelBuffered,

        /// <summary>
        /// Kestrel behind a middleware that swapped the body stream for its own, read through the request's pipe, and put
        /// Kestrel's stream back: the pipe is then a wrapper over Kestrel's stream, not Kestrel's pipe.
        /// </summary>
        KestrelRestored,

        /// <summary>ASP.NET Core's TestServer: its body pipe is a wrapper over its stream.</summary>
        TestServer,
    }

    [Theory]
    [InlineData(Server.Kestrel, 300)]
    [InlineData(Server.Kestrel, FrontDoor.InPlaceLimit + 1)]
    [InlineData(Server.KestrelBuffered, 300)]
    [InlineData(Server.KestrelBuffered, FrontDoor.InPlaceLimit + 1)]
    [InlineData(Server.KestrelRestored, 300)]
    [InlineData(Server.TestServer, 300)]
    [InlineData(Server.TestServer, FrontDoor.InPlaceLimit + 1)]
    public async Task An_endpoint_that_reads_the_body_stream_reads_exactly_the_bytes_sent(Server server, int size)
    {
        // The endpoint reads Request.Body, the stream (as YARP and many hand-written endpoints do), not the pipe MapMcp reads.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { EnvironmentName = "Production" });
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(Configuration().With(new Dictionary<string, string?> { ["McpGuard:Store"] = "InMemory" }));
        if (server == Server.TestServer)
        {
            builder.WebHost.UseTestServer();
        }
        else
        {
            builder.WebHost.UseUrls("http://127.0.0.1:0");
        }

        builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
        await using var app = builder.Build();
        if (server == Server.KestrelBuffered)
        {
            app.Use((context, next) =>
            {
                context.Request.EnableBuffering();
                return next(context);
            });
        }
        else if (server == Server.KestrelRestored)
        {
            app.Use((context, next) =>
            {
                var kestrels = context.Request.Body;
                context.Request.Body = new BufferedStream(kestrels);
                _ = context.Request.BodyReader;
                context.Request.Body = kestrels;
                return next(context);
            });
        }

        app.UseMcpGuard();
        app.MapPost("/mcp", async context =>
        {
            using var read = new MemoryStream();
            await context.Request.Body.CopyToAsync(read);
            context.Response.Headers["X-In-Place"] = (context.Features.Get<McpGuardFeature>()?.BodyInPlace is not null) ? "yes" : "no";
            context.Response.ContentType = "application/octet-stream";
            await context.Response.Body.WriteAsync(read.ToArray());
        });
        await app.StartAsync();
        using var client = server == Server.TestServer ? app.GetTestClient() : new HttpClient { BaseAddress = new Uri(app.Urls.Single()) };

        var (body, _) = EchoCall(size);
        using var request = EchoRequest(body, $"stream-{server}-{size}-{Guid.NewGuid():N}", DemoKeys.Bob, HttpVersion.Version11);
        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(body, await response.Content.ReadAsByteArrayAsync());
        Assert.Equal(server == Server.Kestrel && size <= FrontDoor.InPlaceLimit ? "yes" : "no", response.Headers.GetValues("X-In-Place").Single());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_endpoint_that_aborts_the_request_after_reading_the_body_raises_nothing_from_the_guard(bool http2)
    {
        // The endpoint reads the body, then aborts; the guard then gives back what is left of the body it read in place,
        // on a reader that Kestrel has poisoned with the abort. Nothing of that may escape the guard.
        var escaped = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var host = await GuardedHost.StartAsync(
            builder =>
            {
                builder.Services.AddMcpGuard(builder.Configuration.GetSection("McpGuard"));
                builder.Services.AddMcpServer().WithHttpTransport().WithTools<DifferentialTools>();
                if (http2)
                {
                    builder.WebHost.ConfigureKestrel(kestrel => kestrel.ConfigureEndpointDefaults(endpoint => endpoint.Protocols = HttpProtocols.Http2));
                }
            },
            app =>
            {
                app.Use(async (context, next) =>
                {
                    try
                    {
                        await next(context);
                        escaped.TrySetResult(null);
                    }
                    catch (Exception ex)
                    {
                        escaped.TrySetResult(ex);
                    }
                });
                app.UseMcpGuard();
                app.Use(async (HttpContext context, RequestDelegate _) =>
                {
                    await PeekAsync(context.Request.BodyReader);
                    var read = await context.Request.BodyReader.ReadAsync();
                    context.Request.BodyReader.AdvanceTo(read.Buffer.End);
                    context.Abort();
                });
                app.MapMcp("/mcp");
            },
            Configuration());
        var (body, _) = EchoCall(300);

        await Assert.ThrowsAnyAsync<HttpRequestException>(() => host.Client.SendAsync(
            EchoRequest(body, $"abort-{Guid.NewGuid():N}", DemoKeys.Bob, http2 ? HttpVersion.Version20 : HttpVersion.Version11)));

        Assert.Null(await escaped.Task.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_body_over_the_servers_own_lower_limit_is_413_naming_that_limit(bool chunked)
    {
        // Kestrel refuses the body while the front door reads it, in place (Content-Length) or into its buffer (chunked).
        await using var host = await GuardedHost.StartMcpAsync(
            server => server.WithTools<DifferentialTools>(),
            Configuration(),
            build: builder => builder.WebHost.ConfigureKestrel(kestrel => kestrel.Limits.MaxRequestBodySize = 1_000));
        var (body, _) = EchoCall(5_000);
        using var request = EchoRequest(body, $"over-{Guid.NewGuid():N}", DemoKeys.Bob, HttpVersion.Version11);
        if (chunked)
        {
            request.Content!.Headers.ContentLength = null;
            request.Headers.TransferEncodingChunked = true;
        }

        using var response = await host.Client.SendAsync(request);

        await WireAssert.JsonRpcErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, -32600,
            "Payload Too Large: the request body exceeds 1000 bytes.", "payload_too_large", id: null);
        var (small, message) = EchoCall(500);
        using var served = await host.Client.SendAsync(EchoRequest(small, $"under-{Guid.NewGuid():N}", DemoKeys.Bob, HttpVersion.Version11));
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal(message, (await Sse.ReadSingleMessageAsync(served)).GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
    }

    /// <summary>A POST of <paramref name="body"/> with its <c>Content-Length</c>, over HTTP/2 unless <paramref name="version"/> says otherwise.</summary>
    private static HttpRequestMessage EchoRequest(byte[] body, string requestId, string? apiKey, Version? version = null)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/mcp")
        {
            Content = new ByteArrayContent(body),
            Version = version ?? HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        request.Content.Headers.ContentType = new("application/json");
        request.Content.Headers.ContentLength = body.Length;
        request.Headers.Accept.ParseAdd("application/json, text/event-stream");
        request.Headers.Add("X-Request-Id", requestId);
        if (apiKey is not null)
        {
            request.Headers.Authorization = new("Bearer", apiKey);
        }

        return request;
    }

    [Fact]
    public async Task Pipelined_requests_on_one_connection_each_get_their_own_answer()
    {
        // Three requests in one write: the first refused by the guard after it read the body in place, the second answered
        // by an endpoint that never reads its body, the third served. None may read into the next one's bytes.
        var (first, _) = EchoCall(400);
        var (second, _) = EchoCall(900);
        var (third, message) = EchoCall(700);
        byte[] bytes = [.. Post(first, apiKey: null, skip: false), .. Post(second, DemoKeys.Bob, skip: true), .. Post(third, DemoKeys.Bob, skip: false)];

        await using var connection = await RawHttp.RawConnection.OpenAsync(_host.BaseAddress);
        await connection.SendAsync(bytes);
        var refused = await connection.ReadResponseAsync();
        var unread = await connection.ReadResponseAsync();
        var served = await connection.ReadResponseAsync();

        Assert.Equal(401, refused?.Status);
        Assert.Equal(204, unread?.Status);
        Assert.Equal(200, served?.Status);
        var data = served!.BodyText.Split('\n').Single(line => line.StartsWith("data: ", StringComparison.Ordinal))["data: ".Length..];
        using var answer = JsonDocument.Parse(data);
        Assert.Equal(message, answer.RootElement.GetProperty("result").GetProperty("content")[0].GetProperty("text").GetString());
    }

    /// <summary>A <c>tools/call echo</c> body of exactly <paramref name="size"/> UTF-8 bytes, with multi-byte characters in its message.</summary>
    private static (byte[] Body, string Message) EchoCall(int size)
    {
        const string Prefix = "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"";
        const string Suffix = "\"}}}";
        const string Mixed = "é€😀";
        var fill = size - Encoding.UTF8.GetByteCount(Prefix + Suffix + Mixed);
        var message = Mixed + new string('x', fill);
        return (Encoding.UTF8.GetBytes(Prefix + message + Suffix), message);
    }

    private static byte[] Post(byte[] body, string? apiKey, bool skip)
    {
        var headers = new List<KeyValuePair<string, string>>
        {
            new("Host", "127.0.0.1"),
            new("Content-Type", "application/json"),
            new("Accept", "application/json, text/event-stream"),
            new("Content-Length", body.Length.ToString(CultureInfo.InvariantCulture)),
        };
        if (apiKey is not null)
        {
            headers.Add(new("Authorization", $"Bearer {apiKey}"));
        }

        if (skip)
        {
            headers.Add(new(SkipHeader, "1"));
        }

        return RawHttp.Request("POST", "/mcp", headers, body);
    }

    private static async Task<byte[]> PeekAsync(PipeReader reader)
    {
        while (true)
        {
            var result = await reader.ReadAsync();
            if (result.IsCompleted)
            {
                var bytes = result.Buffer.ToArray();
                reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
                return bytes;
            }

            reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }
}
