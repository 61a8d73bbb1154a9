using System.Text;
using CsCheck;
using McpGuard.Credits;
using McpGuard.Protocol;

namespace McpGuard.Tests.Credits;

/// <summary>The reader that finds the answer to a charged request in the bytes the endpoint writes, however they are split.</summary>
public sealed class ResponseAnswerReaderTests
{
    public static TheoryData<string, string, long, string> Bodies => new()
    {
        { "application/json", """{"jsonrpc":"2.0","id":5,"result":{}}""", 5, "Result" },
        { "application/json", """{"result":{"content":[{"type":"text","text":"{\"id\":5,\"error\":{}}"}]},"id":5,"jsonrpc":"2.0"}""", 5, "Result" },
        { "application/json", """{"jsonrpc":"2.0","id":5,"error":{"code":-32602,"message":"no"}}""", 5, "Error" },
        { "application/json", """{"jsonrpc":"2.0","id":6,"result":{}}""", 5, "None" },
        { "application/json", """{"jsonrpc":"2.0","id":"5","result":{}}""", 5, "None" },
        { "application/json", """{"jsonrpc":"2.0","id":5,"result":{"isError":true,"structuredContent":{"reason":"internal_error"}}}""", 5, "ToolInternalError" },
        { "application/json", """{"jsonrpc":"2.0","id":5,"result":{"isError":false,"structuredContent":{"reason":"internal_error"}}}""", 5, "Result" },
        { "application/json", """{"jsonrpc":"2.0","id":5,"result":{"isError":true,"structuredContent":{"reason":"not_found"}}}""", 5, "Result" },
        { "application/json", """{"jsonrpc":"2.0","id":5,"result":{"isError":true,"content":[{"structuredContent":{"reason":"internal_error"}}]}}""", 5, "Result" },
        { "application/json", """{"jsonrpc":"2.0","id":5,"result":{"resultType":"input_required"}}""", 5, "Incomplete" },
        { "application/json", """{"jsonrpc":"2.0","id":5,"result":{"resultType":"complete","isError":true,"structuredContent":{"reason":"internal_error"}}}""", 5, "ToolInternalError" },
        { "application/json", """{"jsonrpc":"2.0","id":5,"result":{"nested":{"resultType":"input_required"}}}""", 5, "Result" },
        { "application/json", """{"jsonrpc":"2.0","method":"x","params":{"id":5,"result":{}}}""", 5, "None" },
        { "application/json", """[{"jsonrpc":"2.0","id":5,"result":{}}]""", 5, "None" },
        { "application/json", """{"jsonrpc":"2.0","\u0069\u0064":5,"r\u0065sult":[1,[],{},"]"]}""", 5, "Result" },
        { "application/json", """{"jsonrpc":"2.0","id":5e0,"result":{}}""", 5, "None" },
        { "text/event-stream", "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":5}}\n\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}\n\n", 5, "Result" },
        { "text/event-stream", "id: 1\r\ndata:{\"jsonrpc\":\"2.0\",\r\ndata:\"id\":\"a\\\"b\",\"error\":{}}\r\n\r\n", 0, "None" },
        { "text/event-stream", "data: {\"jsonrpc\":\"2.0\",\"id\":\"req-\\u0035\",\"result\":{}}\n\n", -1, "Result" },
        { "text/event-stream", ":comment {\"id\":5,\"result\":{}}\n\ndata: {\"id\":5,\n\ndata: \"result\":{}}\n\n", 5, "None" },
        { "text/event-stream", "data: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}", 5, "Result" },
        { "text/event-stream", "retry: 10\nid: 9\nevent: message\ndata\ndata: {\"id\":5,\"result\":{}}\n\n", 5, "Result" },
        { "text/plain", "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}", 5, "None" },
        { "application/json", "5}{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}", 5, "None" },
        { "application/json", "true]{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}", 5, "None" },
        { "text/event-stream", "data: 5}{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"error\":{}}\n\n", 5, "Error" },
        { "application/json", "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"resultType\":\"" + new string('x', 300) + "\"}}", 5, "Incomplete" },
        { "application/json", "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"isError\":true,\"structuredContent\":{\"reason\":\"internal_error" + new string(' ', 300) + "\"}}}", 5, "Result" },
    };

    [Theory]
    [MemberData(nameof(Bodies))]
    public void The_answer_is_read_whole_and_byte_by_byte(string contentType, string body, long id, string answer)
    {
        var expected = Enum.Parse<AnswerKind>(answer);
        var requestId = id == -1 ? new JsonRpcId("req-5") : new JsonRpcId(id);
        Assert.Equal(expected, Read(contentType, Encoding.UTF8.GetBytes(body), requestId, [int.MaxValue]));
        Assert.Equal(expected, Read(contentType, Encoding.UTF8.GetBytes(body), requestId, [1]));
    }

    /// <summary>An id is read whole however long it is, written as it is or escaped (up to 6 bytes a character).</summary>
    [Theory]
    [InlineData(300, 'a', false)]
    [InlineData(60, '<', true)]
    [InlineData(5_000, '\u00e9', true)]
    [InlineData(5_000, '\u00e9', false)]
    public void A_long_string_id_is_read_whole(int length, char character, bool escaped)
    {
        var id = new string(character, length);
        foreach (var (written, expected) in new[] { (id, AnswerKind.Result), (id[..^1] + "b", AnswerKind.None), (id + "a", AnswerKind.None) })
        {
            var text = escaped ? string.Concat(written.Select(c => $"\\u{(int)c:x4}")) : written;
            var body = Encoding.UTF8.GetBytes("data: {\"result\":{},\"id\":\"" + text + "\",\"jsonrpc\":\"2.0\"}\n\n");
            Assert.Equal(expected, Read("text/event-stream", body, new JsonRpcId(id), [int.MaxValue]));
            Assert.Equal(expected, Read("text/event-stream", body, new JsonRpcId(id), [7]));
        }
    }

    /// <summary>
    /// A result nested deeper than 63 levels (a tool may return what it was given) still ends where it ends: the reader
    /// once kept depths 63 and beyond in one bit, lost an array's closing bracket after an object at that depth, never
    /// saw the message end, and refunded the served call.
    /// </summary>
    [Theory]
    [InlineData(60)]
    [InlineData(63)]
    [InlineData(64)]
    [InlineData(200)]
    public void A_deeply_nested_result_ends_where_it_ends(int depth)
    {
        var nested = new string('[', depth) + "{},0" + new string(']', depth);
        var body = Encoding.UTF8.GetBytes("data: {\"result\":{\"structuredContent\":{\"v\":" + nested + "},\"isError\":false},\"id\":5,\"jsonrpc\":\"2.0\"}\n\n");
        Assert.Equal(AnswerKind.Result, Read("text/event-stream", body, new JsonRpcId(5), [int.MaxValue]));
        Assert.Equal(AnswerKind.Result, Read("text/event-stream", body, new JsonRpcId(5), [3]));
    }

    /// <summary>A body that starts with a UTF-8 byte order mark is read past it, however the mark is split.</summary>
    [Theory]
    [InlineData("application/json", "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}", "None")]
    [InlineData("text/event-stream", "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}\n\n", "Result")]
    [InlineData("text/event-stream", "data: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}\n\n", "None")]
    public void A_leading_byte_order_mark_is_skipped(string contentType, string body, string withTwoMarks)
    {
        var bytes = (byte[])[0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(body)];
        foreach (var chunk in new[] { int.MaxValue, 1, 2, 4 })
        {
            Assert.Equal(AnswerKind.Result, Read(contentType, bytes, new JsonRpcId(5), [chunk]));
        }

        // Only one mark is skipped: a second one is not JSON, and in an event stream it is part of the first field's name
        // (an unknown field, ignored; a "data" line after it still counts).
        Assert.Equal(Enum.Parse<AnswerKind>(withTwoMarks), Read(contentType, [0xEF, 0xBB, 0xBF, .. bytes], new JsonRpcId(5), [1]));
    }

    [Fact]
    public void Any_split_of_the_body_gives_the_same_answer()
    {
        var bodies = Bodies;
        Gen.Select(Gen.Int[0, bodies.Count - 1], Gen.Int[1, 40].Array[1, 30]).Sample((index, chunks) =>
        {
            var row = (object[])bodies.ElementAt(index);
            var (contentType, body, id, expected) = ((string)row[0], (string)row[1], (long)row[2], Enum.Parse<AnswerKind>((string)row[3]));
            var requestId = id == -1 ? new JsonRpcId("req-5") : new JsonRpcId(id);
            return Read(contentType, Encoding.UTF8.GetBytes(body), requestId, chunks) == expected;
        }, iter: 5_000, seed: TestSeedsForThisClass);
    }

    private static readonly string? TestSeedsForThisClass = Environment.GetEnvironmentVariable("CsCheck_Seed");

    /// <summary>The reader's answer to a body written in chunks of the given sizes (repeated), then completed.</summary>
    internal static AnswerKind Read(string contentType, byte[] body, JsonRpcId id, int[] chunks)
    {
        var reader = new ResponseAnswerReader(id);
        reader.Start(contentType);
        var offset = 0;
        var next = 0;
        while (offset < body.Length)
        {
            var size = Math.Min(chunks[next++ % chunks.Length], body.Length - offset);
            reader.Write(body.AsSpan(offset, size));
            offset += size;
        }

        reader.Complete();
        return reader.Answer;
    }
}
