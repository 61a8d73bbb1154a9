using System.IO.Compression;
using System.Net;
using System.Text;
using CsCheck;
using McpGuard.Proxy;
using McpGuard.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace McpGuard.Tests.Proxy;

/// <summary>
/// Where the proxy and its upstream could read one exchange differently, and what the proxy does so that they cannot:
/// the upstream's own host, no cookies and no compression; integer ids a JavaScript upstream would round; streams that
/// cannot be resumed past a settled call; no protocol upgrades.
/// </summary>
public sealed class ProxyHardeningTests
{
    [Fact]
    public async Task The_client_cannot_pick_the_upstreams_host_or_send_it_cookies_or_ask_for_compression()
    {
        await using var upstream = await Upstream.StartAsync(CreditCalls.AnswerWithResult);
        await using var guard = await ProxyTests.StartProxyAsync(upstream.Url);

        using var response = await guard.PostMcpAsync(CreditCalls.ToolCall(1, "echo", """{"message":"hi"}"""), headers: new Dictionary<string, string>
        {
            ["Host"] = "internal-admin.example",
            ["Cookie"] = "session=abc",
            ["Accept-Encoding"] = "gzip, br",
        });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = Assert.Single(upstream.Requests);
        Assert.Equal(upstream.Url.Authority, seen.Header("Host"));
        Assert.Equal("internal-admin.example", seen.Header("X-Forwarded-Host"));
        Assert.Null(seen.Header("Cookie"));
        Assert.Null(seen.Header("Accept-Encoding"));
    }

    [Fact]
    public async Task A_compressed_answer_is_not_passed_on_and_the_charge_is_refunded()
    {
        await using var upstream = await Upstream.StartAsync(async context =>
        {
            var json = Encoding.UTF8.GetBytes("""{"jsonrpc":"2.0","id":1,"result":{}}""");
            using var compressed = new MemoryStream();
            await using (var gzip = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
            {
                await gzip.WriteAsync(json);
            }

            context.Response.ContentType = "application/json";
            context.Response.Headers.ContentEncoding = "gzip";
            await context.Response.Body.WriteAsync(compressed.ToArray());
        });
        await using var guard = await ProxyTests.StartProxyAsync(upstream.Url);

        using var response = await CreditCalls.CallAsync(guard, CreditCalls.Add(1), requestId: "req-gzip");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Null(response.Content.Headers.ContentEncoding.FirstOrDefault());
        Assert.Equal(
            """{"jsonrpc":"2.0","id":1,"error":{"code":-31501,"message":"Upstream error: the MCP server sent its answer compressed (Content-Encoding), which the guard cannot read; it was not passed on.","data":{"reason":"upstream_error","request_id":"req-gzip","refunded":true,"refunded_micro":800}}}""",
            await response.Content.ReadAsStringAsync());
        Assert.Equal(DemoKeys.AliceBalance, LedgerFile.Balance(guard, "alice"));
    }

    [Theory]
    [InlineData(9007199254740993L)]
    [InlineData(-9007199254740992L)]
    [InlineData(long.MaxValue)]
    public async Task An_integer_id_a_JavaScript_upstream_would_round_is_refused_and_refunded(long id)
    {
        await using var upstream = await Upstream.StartAsync(CreditCalls.AnswerWithResult);
        await using var guard = await ProxyTests.StartProxyAsync(upstream.Url);

        using var response = await CreditCalls.CallAsync(guard, CreditCalls.Add(id), requestId: "req-big-id");
        using var largestSafe = await CreditCalls.CallAsync(guard, CreditCalls.Add(9007199254740991L), requestId: "req-safe-id");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal(
            $$$"""{"jsonrpc":"2.0","id":{{{id}}},"error":{"code":-32600,"message":"Invalid Request: a numeric id must lie between -9007199254740991 and 9007199254740991 (an upstream in JavaScript reads larger ones as other numbers); use a string id.","data":{"reason":"invalid_request","request_id":"req-big-id","refunded":true,"refunded_micro":800}""" + "}}",
            await response.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, largestSafe.StatusCode);
        Assert.Equal(CreditCalls.Add(9007199254740991L), Assert.Single(upstream.Requests).Body);
        Assert.Equal(DemoKeys.AliceBalance - 800, LedgerFile.Balance(guard, "alice"));
    }

    [Fact]
    public async Task A_post_stream_loses_its_event_ids_so_it_cannot_be_resumed_past_its_settlement()
    {
        const string Stream =
            "id: e1\r\nevent: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\r\n\r\n"
            + "id\nretry: 1000\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
        await using var upstream = await Upstream.StartAsync(async context =>
        {
            context.Response.ContentType = "text/event-stream";
            await context.Response.WriteAsync(Stream);
        });
        await using var guard = await ProxyTests.StartProxyAsync(upstream.Url);

        using var priced = await CreditCalls.CallAsync(guard, CreditCalls.Add(1), requestId: "req-priced");
        using var free = await CreditCalls.CallAsync(guard, CreditCalls.ToolCall(1, "echo", """{"message":"hi"}"""));

        // The priced call's answer also carries its charge in its _meta (ChargedAnswerBody); the free call's is as it came.
        foreach (var (response, result) in new[]
        {
            (priced, """{"_meta":{"mcpguard/charge":{"charged_micro":800,"balance_micro":999200,"request_id":"req-priced"}}}"""),
            (free, "{}"),
        })
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(
                "event: message\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,\"progress\":1}}\r\n\r\n"
                + "retry: 1000\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":" + result + "}\n\n",
                await response.Content.ReadAsStringAsync());
        }

        Assert.Equal("800", CreditCalls.Header(priced, CreditCalls.ChargeHeader));
    }

    [Fact]
    public async Task Protocol_upgrades_are_not_forwarded()
    {
        await using var upstream = await Upstream.StartAsync(CreditCalls.AnswerWithResult);
        await using var guard = await ProxyTests.StartProxyAsync(upstream.Url);

        var response = await RawHttp.SendAsync(guard.BaseAddress, RawHttp.Request("GET", "/mcp",
        [
            new("Host", guard.BaseAddress.Authority),
            new("Authorization", $"Bearer {DemoKeys.Alice}"),
            new("Accept", "text/event-stream"),
            new("Connection", "Upgrade"),
            new("Upgrade", "websocket"),
            new("Sec-WebSocket-Version", "13"),
            new("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            new("X-Request-Id", "req-upgrade"),
        ]), RawEnding.StayOpen, TimeSpan.FromSeconds(10));

        Assert.NotNull(response);
        Assert.Equal(400, response.Status);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: the proxy does not forward protocol upgrades (Upgrade, extended CONNECT).","data":{"reason":"invalid_request","request_id":"req-upgrade"}}}""",
            response.BodyText);
        Assert.Empty(upstream.Requests);
    }

    [Fact]
    public async Task A_body_on_get_or_delete_and_a_header_beyond_ascii_get_400_and_never_reach_the_upstream()
    {
        await using var upstream = await Upstream.StartAsync(CreditCalls.AnswerWithResult);
        await using var guard = await ProxyTests.StartProxyAsync(upstream.Url);

        var delete = await RawHttp.SendAsync(guard.BaseAddress, RawHttp.Request("DELETE", "/mcp",
        [
            new("Host", guard.BaseAddress.Authority),
            new("Authorization", $"Bearer {DemoKeys.Alice}"),
            new("Content-Type", "application/json"),
            new("Content-Length", "38"),
            new("X-Request-Id", "req-delete-body"),
        ], """{"jsonrpc":"2.0","id":1,"method":"ping"}"""u8[..38]), RawEnding.StayOpen, TimeSpan.FromSeconds(10));
        var latin1 = await RawHttp.SendAsync(guard.BaseAddress, RawHttp.Request("POST", "/mcp",
        [
            new("Host", guard.BaseAddress.Authority),
            new("Authorization", $"Bearer {DemoKeys.Alice}"),
            new("Content-Type", "application/json"),
            new("Accept", "application/json, text/event-stream"),
            new("X-Junk", "caf\u00c3\u00a9"), // the UTF-8 bytes of "café" (RawHttp writes each char as one byte)
            new("Content-Length", "40"),
            new("X-Request-Id", "req-latin1"),
        ], """{"jsonrpc":"2.0","id":1,"method":"ping"}"""u8), RawEnding.StayOpen, TimeSpan.FromSeconds(10));

        Assert.NotNull(delete);
        Assert.Equal(400, delete.Status);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid Request: a DELETE to the MCP endpoint carries no body.","data":{"reason":"invalid_request","request_id":"req-delete-body"}}}""",
            delete.BodyText);
        Assert.NotNull(latin1);
        Assert.Equal(400, latin1.Status);
        Assert.Equal(
            """{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"Invalid Request: the value of the X-Junk header has characters other than visible ASCII, spaces and tabs.","data":{"reason":"invalid_request","request_id":"req-latin1"}}}""",
            latin1.BodyText);
        Assert.Empty(upstream.Requests);
    }

    /// <summary>SSE text as an upstream may write it: lines of every kind an id filter could confuse, any line ends.</summary>
    private static readonly Gen<(string Text, int[] Cuts)> Streams =
        from lines in Gen.OneOf(
                Gen.Const("id: 1"), Gen.Const("id:x"), Gen.Const("id"), Gen.Const("i"), Gen.Const("idx: 2"), Gen.Const("Id: 3"), Gen.Const(" id: 4"),
                Gen.Const("data: {\"id\":1}"), Gen.Const("data:id: 5"), Gen.Const("event: message"), Gen.Const(": id: 6"), Gen.Const(""), Gen.Const("retry: 10"))
            .Array[0, 12]
        from endings in Gen.OneOf(Gen.Const("\n"), Gen.Const("\r\n"), Gen.Const("\r")).Array[12, 12]
        from end in Gen.Bool
        from cuts in Gen.Int[0, 200].Array[0, 6]
        select (string.Concat(lines.Select((l, i) => l + (i < lines.Length - 1 || end ? endings[i] : string.Empty))), cuts);

    [Fact]
    public void The_id_filter_removes_exactly_the_id_lines_however_the_stream_is_cut()
    {
        Streams.Sample(
            sample =>
            {
                var input = Encoding.UTF8.GetBytes(sample.Text);
                var filter = new EventIdStrippingBody(null!, null!);
                var output = new List<byte>();
                var buffer = new byte[input.Length + 3];
                var start = 0;
                foreach (var cut in sample.Cuts.Select(c => Math.Min(c, input.Length)).Order().Append(input.Length))
                {
                    var n = filter.Filter(input.AsSpan(start, cut - start), buffer);
                    output.AddRange(buffer.AsSpan(0, n).ToArray());
                    start = cut;
                }

                var end = filter.FilterEnd(buffer);
                output.AddRange(buffer.AsSpan(0, end).ToArray());
                Assert.Equal(WithoutIdLines(sample.Text), Encoding.UTF8.GetString([.. output]));
            },
            iter: 5000,
            print: s => $"{s.Text.Replace("\r", "\\r").Replace("\n", "\\n")} cut at [{string.Join(",", s.Cuts)}]");
    }

    /// <summary>The reference: split into lines with their ends (CRLF, CR or LF), drop those whose field is <c>id</c>.</summary>
    private static string WithoutIdLines(string text)
    {
        var result = new StringBuilder();
        var i = 0;
        while (i < text.Length)
        {
            var j = i;
            while (j < text.Length && text[j] is not ('\r' or '\n'))
            {
                j++;
            }

            var line = text[i..j];
            var endLength = j < text.Length ? (text[j] == '\r' && j + 1 < text.Length && text[j + 1] == '\n' ? 2 : 1) : 0;
            if (line != "id" && !line.StartsWith("id:", StringComparison.Ordinal))
            {
                result.Append(text, i, j - i + endLength);
            }

            i = j + endLength;
        }

        return result.ToString();
    }
}
