using McpGuard.Protocol;
using Microsoft.Extensions.Primitives;

namespace McpGuard.Tests.Protocol;

/// <summary>The front door's header parsing: Content-Type, Accept, and the request id it keeps or makes.</summary>
public sealed class FrontDoorHeaderParsingTests
{
    [Theory]
    [InlineData("application/json")]
    [InlineData("APPLICATION/JSON")]
    [InlineData("Application/Json")]
    [InlineData(" application/json ")]
    [InlineData("application/json;")]
    [InlineData("application/json; charset=utf-8")]
    [InlineData("application/json;charset=UTF-8")]
    [InlineData("application/json; charset=utf8")]
    [InlineData("application/json; charset=\"utf-8\"")]
    [InlineData("application/json ; Charset = utf-8 ")]
    [InlineData("application/json; foo=bar")]
    [InlineData("application/json; foo=bar; charset=utf-8")]
    [InlineData("application/json; novalue")]
    public void Json_content_types_are_accepted(string contentType)
    {
        Assert.True(FrontDoor.IsJsonContentType(contentType));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("text/json")]
    [InlineData("text/plain")]
    [InlineData("application/jsonx")]
    [InlineData("application/json-patch+json")]
    [InlineData("application/vnd.api+json")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("application/json, text/plain")]
    [InlineData("application/ json")]
    [InlineData("application/json; charset=iso-8859-1")]
    [InlineData("application/json; charset=utf-16")]
    [InlineData("application/json; charset=")]
    [InlineData("application/json; charset=utf-8; charset=latin1")]
    [InlineData("application/json; foo=bar; charset=us-ascii")]
    public void Other_content_types_and_charsets_are_refused(string? contentType)
    {
        Assert.False(FrontDoor.IsJsonContentType(contentType));
    }

    [Theory]
    [InlineData("application/json, text/event-stream")]
    [InlineData("text/event-stream, application/json")]
    [InlineData("application/json,text/event-stream")]
    [InlineData(" application/json , text/event-stream ")]
    [InlineData("APPLICATION/JSON, TEXT/EVENT-STREAM")]
    [InlineData("application/json;q=0.9, text/event-stream;q=0.8")]
    [InlineData("*/*")]
    [InlineData("text/html, */*;q=0.1")]
    [InlineData("application/*, text/*")]
    [InlineData("application/json, text/*")]
    [InlineData("application/*, text/event-stream")]
    [InlineData("text/html, application/json, image/png, text/event-stream")]
    public void Accept_values_covering_json_and_event_stream_are_accepted(string accept)
    {
        Assert.True(FrontDoor.AcceptsJsonAndEventStream(new StringValues(accept)));
    }

    [Fact]
    public void Json_and_event_stream_may_arrive_in_separate_accept_headers()
    {
        Assert.True(FrontDoor.AcceptsJsonAndEventStream(new StringValues(["application/json", "text/event-stream"])));
        Assert.True(FrontDoor.AcceptsJsonAndEventStream(new StringValues(["text/html", "text/event-stream", "application/json"])));
    }

    [Theory]
    [InlineData("")]
    [InlineData(",")]
    [InlineData("application/json")]
    [InlineData("text/event-stream")]
    [InlineData("application/*")]
    [InlineData("text/*")]
    [InlineData("application/json, text/html")]
    [InlineData("application/json-seq, text/event-stream")]
    [InlineData("application/jsonl, text/event-stream")]
    [InlineData("application/json, text/event-streams")]
    [InlineData("image/*, application/json")]
    [InlineData("application/json text/event-stream")]
    [InlineData("application/json; text/event-stream")]
    public void Accept_values_missing_either_type_are_refused(string accept)
    {
        Assert.False(FrontDoor.AcceptsJsonAndEventStream(new StringValues(accept)));
    }

    [Fact]
    public void No_accept_header_is_refused()
    {
        Assert.False(FrontDoor.AcceptsJsonAndEventStream(StringValues.Empty));
        Assert.False(FrontDoor.AcceptsJsonAndEventStream(new StringValues(["application/json"])));
    }

    [Theory]
    [InlineData("a")]
    [InlineData("0")]
    [InlineData("req_3f2b9c")]
    [InlineData("abc-DEF_123.456:789")]
    [InlineData("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]
    [InlineData("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6")]
    public void Well_formed_request_ids_are_kept(string value)
    {
        Assert.True(RequestIds.IsWellFormed(value));
    }

    [Fact]
    public void A_request_id_of_exactly_128_characters_is_kept_and_129_is_not()
    {
        Assert.True(RequestIds.IsWellFormed(new string('a', 128)));
        Assert.False(RequestIds.IsWellFormed(new string('a', 129)));
    }

    [Theory]
    [InlineData("")]
    [InlineData(" ")]
    [InlineData("has space")]
    [InlineData(" leading")]
    [InlineData("trailing ")]
    [InlineData("semi;colon")]
    [InlineData("comma,separated")]
    [InlineData("slash/path")]
    [InlineData("quote\"")]
    [InlineData("<script>")]
    [InlineData("new\nline")]
    [InlineData("cr\rlf")]
    [InlineData("tab\t")]
    [InlineData("nul\0")]
    [InlineData("caf\u00e9")]
    [InlineData("\u0661\u0662")]
    [InlineData("full\uFF41width")]
    [InlineData("plus+sign")]
    [InlineData("equals=sign")]
    public void Malformed_request_ids_are_replaced(string value)
    {
        Assert.False(RequestIds.IsWellFormed(value));
    }

    [Fact]
    public void A_new_request_id_is_req_plus_22_url_safe_base64_characters()
    {
        var id = RequestIds.NewId();

        Assert.Equal(26, id.Length);
        Assert.StartsWith("req_", id, StringComparison.Ordinal);
        Assert.All(id[4..], c => Assert.True(char.IsAsciiLetterOrDigit(c) || c is '-' or '_', $"'{c}' is not URL-safe base64"));
        Assert.True(RequestIds.IsWellFormed(id));
    }

    [Fact]
    public void New_request_ids_carry_the_full_128_bits()
    {
        var id = RequestIds.NewId();

        var bytes = System.Buffers.Text.Base64Url.DecodeFromChars(id.AsSpan(4));

        Assert.Equal(16, bytes.Length);
    }

    [Fact]
    public void New_request_ids_are_uuid_v7_so_the_ledger_index_grows_at_its_end()
    {
        var before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var bytes = System.Buffers.Text.Base64Url.DecodeFromChars(RequestIds.NewId().AsSpan(4));
        var after = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

        var milliseconds = ((long)bytes[0] << 40) | ((long)bytes[1] << 32) | ((long)bytes[2] << 24) | ((long)bytes[3] << 16) | ((long)bytes[4] << 8) | bytes[5];
        Assert.InRange(milliseconds, before, after);
        Assert.Equal(7, bytes[6] >> 4);
        Assert.Equal(0b10, bytes[8] >> 6);
    }

    [Fact]
    public void New_request_ids_do_not_repeat()
    {
        var ids = Enumerable.Range(0, 10_000).Select(_ => RequestIds.NewId()).ToHashSet(StringComparer.Ordinal);

        Assert.Equal(10_000, ids.Count);
    }

    [Fact]
    public void New_request_ids_made_on_many_threads_at_once_do_not_repeat()
    {
        var ids = new System.Collections.Concurrent.ConcurrentBag<string>();

        Parallel.For(0, 8, new ParallelOptions { MaxDegreeOfParallelism = 8 }, _ =>
        {
            for (var i = 0; i < 2_000; i++)
            {
                ids.Add(RequestIds.NewId());
            }
        });

        Assert.Equal(16_000, ids.Distinct(StringComparer.Ordinal).Count());
    }

    [Theory]
    [InlineData((byte)0xFF, "req_ASNFZ4mrf_-__________w")]
    [InlineData((byte)0x00, "req_ASNFZ4mrcACAAAAAAAAAAA")]
    public void A_request_id_puts_the_time_version_variant_and_74_random_bits_where_uuid_v7_has_them(byte fill, string expected)
    {
        var random = Enumerable.Repeat(fill, RequestIds.RandomBytesPerId).ToArray();

        Assert.Equal(expected, RequestIds.Create(0x0123456789AB, random));
    }

    [Fact]
    public void A_request_id_is_the_runtimes_uuid_v7_for_the_same_time_and_random_bits()
    {
        for (var i = 0; i < 100; i++)
        {
            var time = DateTimeOffset.UnixEpoch.AddMilliseconds(Random.Shared.NextInt64(0, 1L << 47));
            var uuid = Guid.CreateVersion7(time).ToByteArray(bigEndian: true);
            byte[] random = [(byte)(uuid[6] & 0x0F), uuid[7], (byte)(uuid[8] & 0x3F), .. uuid.AsSpan(9)];

            Assert.Equal("req_" + System.Buffers.Text.Base64Url.EncodeToString(uuid), RequestIds.Create(time.ToUnixTimeMilliseconds(), random));
        }
    }
}
