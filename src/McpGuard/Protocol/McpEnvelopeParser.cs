using System.Text.Json;
using System.Text.Unicode;

namespace McpGuard.Protocol;

/// <summary>Why a body was refused by the parser.</summary>
internal readonly record struct EnvelopeFailure(string Reason, string Detail, JsonRpcId Id);

/// <summary>
/// Reads the JSON-RPC envelope of an MCP POST in one forward pass of a <see cref="Utf8JsonReader"/>
/// over the buffered body: no DOM, no second parse. It validates the whole document (so a body the
/// guard accepts is one the endpoint can read) and rejects what could make the guard and the endpoint
/// disagree about the call, such as duplicate envelope members.
/// </summary>
internal static class McpEnvelopeParser
{

    private static ReadOnlySpan<byte> JsonRpcProperty => "jsonrpc"u8;
    private static ReadOnlySpan<byte> IdProperty => "id"u8;
    private static ReadOnlySpan<byte> MethodProperty => "method"u8;
    private static ReadOnlySpan<byte> ParamsProperty => "params"u8;
    private static ReadOnlySpan<byte> ResultProperty => "result"u8;
    private static ReadOnlySpan<byte> ErrorProperty => "error"u8;
    private static ReadOnlySpan<byte> NameProperty => "name"u8;
    private static ReadOnlySpan<byte> UriProperty => "uri"u8;
    private static ReadOnlySpan<byte> MetaProperty => "_meta"u8;
    private static ReadOnlySpan<byte> ProtocolVersionProperty => "protocolVersion"u8;
    private static ReadOnlySpan<byte> MetaProtocolVersionProperty => "io.modelcontextprotocol/protocolVersion"u8;
    private static ReadOnlySpan<byte> Version20 => "2.0"u8;

    [Flags]
    private enum Seen
    {
        None = 0,
        JsonRpc = 1,
        Id = 2,
        Method = 4,
        Params = 8,
        Result = 16,
        Error = 32,
    }

    public static bool TryParse(
        ReadOnlySpan<byte> body,
        string? protocolVersionHeader,
        int maxDepth,
        out McpEnvelope? envelope,
        out EnvelopeFailure failure)
    {
        envelope = null;
        failure = default;

        if (!Utf8.IsValid(body))
        {
            failure = new(McpGuardReasons.ParseError, "Parse error: the request body is not valid UTF-8.", default);
            return false;
        }

        // Checked up front: Utf8JsonReader throws on a body with no token at all, like any other bad JSON.
        if (body.TrimStart(" \t\r\n"u8).IsEmpty)
        {
            failure = new(McpGuardReasons.ParseError, "Parse error: the request body is empty.", default);
            return false;
        }

        var reader = new Utf8JsonReader(body, new JsonReaderOptions
        {
            CommentHandling = JsonCommentHandling.Disallow,
            AllowTrailingCommas = false,
            MaxDepth = maxDepth,
        });

        var seen = Seen.None;
        var versionOk = false;
        var idValid = true;
        JsonRpcId id = default;
        string? method = null;
        var methodValid = true;
        string? name = null, uri = null, initializeVersion = null, metaVersion = null;
        string? structural = null;

        try
        {
            reader.Read();
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                var isBatch = reader.TokenType == JsonTokenType.StartArray;
                reader.Skip();
                EnsureEnd(ref reader);
                failure = new(McpGuardReasons.InvalidRequest, isBatch
                    ? "Invalid Request: batches are not supported; send one JSON-RPC message per POST."
                    : "Invalid Request: the body must be a JSON-RPC object.", default);
                return false;
            }

            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals(JsonRpcProperty))
                {
                    structural ??= Mark(ref seen, Seen.JsonRpc, "jsonrpc");
                    reader.Read();
                    versionOk = reader.TokenType == JsonTokenType.String && reader.ValueTextEquals(Version20);
                    reader.Skip();
                }
                else if (reader.ValueTextEquals(IdProperty))
                {
                    // Marked even after an earlier problem: with two ids neither can be trusted, so none is echoed.
                    var duplicateId = Mark(ref seen, Seen.Id, "id");
                    structural ??= duplicateId;
                    reader.Read();
                    switch (reader.TokenType)
                    {
                        case JsonTokenType.String:
                            id = new JsonRpcId(reader.GetString()!);
                            break;
                        case JsonTokenType.Number when reader.TryGetInt64(out var number):
                            id = new JsonRpcId(number);
                            break;
                        default:
                            idValid = false;
                            reader.Skip();
                            break;
                    }

                    idValid &= duplicateId is null;
                }
                else if (reader.ValueTextEquals(MethodProperty))
                {
                    structural ??= Mark(ref seen, Seen.Method, "method");
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.String)
                    {
                        method = McpMethods.Read(ref reader);
                    }
                    else
                    {
                        methodValid = false;
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals(ParamsProperty))
                {
                    structural ??= Mark(ref seen, Seen.Params, "params");
                    reader.Read();
                    if (reader.TokenType == JsonTokenType.StartObject)
                    {
                        // Always read params through, even after an earlier problem, so the reader stays in step.
                        var paramsProblem = ReadParams(ref reader, ref name, ref uri, ref initializeVersion, ref metaVersion);
                        structural ??= paramsProblem;
                    }
                    else
                    {
                        structural ??= "Invalid Request: params must be an object.";
                        reader.Skip();
                    }
                }
                else if (reader.ValueTextEquals(ResultProperty))
                {
                    structural ??= Mark(ref seen, Seen.Result, "result");
                    reader.Read();
                    reader.Skip();
                }
                else if (reader.ValueTextEquals(ErrorProperty))
                {
                    structural ??= Mark(ref seen, Seen.Error, "error");
                    reader.Read();
                    reader.Skip();
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            EnsureEnd(ref reader);
        }
        catch (JsonException)
        {
            failure = new(McpGuardReasons.ParseError, "Parse error: the request body is not valid JSON.", default);
            return false;
        }
        catch (InvalidOperationException)
        {
            // GetString() refuses a \uD800-\uDFFF escape without its partner; no .NET reader can turn it into a string.
            failure = new(McpGuardReasons.ParseError, "Parse error: a string in the JSON-RPC envelope contains an unpaired surrogate escape (\\uD800-\\uDFFF).", default);
            return false;
        }

        // Echo the id only when it was read cleanly; JSON-RPC asks for null when it could not be.
        var echoId = idValid ? id : default;

        if (!versionOk)
        {
            failure = new(McpGuardReasons.InvalidRequest, "Invalid Request: missing or invalid jsonrpc version", echoId);
            return false;
        }

        if (structural is not null)
        {
            failure = new(McpGuardReasons.InvalidRequest, structural, echoId);
            return false;
        }

        if (!idValid)
        {
            failure = new(McpGuardReasons.InvalidRequest, "Invalid Request: id must be a string or an integer.", default);
            return false;
        }

        McpMessageKind kind;
        if ((seen & Seen.Method) != 0)
        {
            if (!methodValid)
            {
                failure = new(McpGuardReasons.InvalidRequest, "Invalid Request: method must be a string.", echoId);
                return false;
            }

            if ((seen & (Seen.Result | Seen.Error)) != 0)
            {
                failure = new(McpGuardReasons.InvalidRequest, "Invalid Request: a request cannot carry result or error.", echoId);
                return false;
            }

            kind = id.IsNone ? McpMessageKind.Notification : McpMessageKind.Request;
        }
        else if ((seen & (Seen.Result | Seen.Error)) is Seen.Result or Seen.Error && !id.IsNone)
        {
            kind = McpMessageKind.Response;
        }
        else if ((seen & (Seen.Result | Seen.Error)) != 0)
        {
            failure = new(McpGuardReasons.InvalidRequest, "Invalid Request: a response needs an id and exactly one of result or error.", echoId);
            return false;
        }
        else
        {
            failure = new(McpGuardReasons.InvalidRequest, "Invalid Request: method must be a string.", echoId);
            return false;
        }

        envelope = new McpEnvelope
        {
            Kind = kind,
            Id = id,
            Method = method,
            Name = name,
            Uri = uri,
            ProtocolVersion = !string.IsNullOrEmpty(protocolVersionHeader)
                ? protocolVersionHeader
                : metaVersion ?? (method == McpMethods.Initialize ? initializeVersion : null),
        };
        return true;
    }

    private static string? Mark(ref Seen seen, Seen flag, string member)
    {
        if ((seen & flag) != 0)
        {
            return $"Invalid Request: duplicate member '{member}'.";
        }

        seen |= flag;
        return null;
    }

    private static string? ReadParams(ref Utf8JsonReader reader, ref string? name, ref string? uri, ref string? initializeVersion, ref string? metaVersion)
    {
        string? problem = null;
        bool sawName = false, sawUri = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals(NameProperty))
            {
                problem ??= sawName ? "Invalid Request: duplicate member 'params.name'." : null;
                sawName = true;
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    name = reader.GetString();
                }
                else
                {
                    name = null;
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals(UriProperty))
            {
                problem ??= sawUri ? "Invalid Request: duplicate member 'params.uri'." : null;
                sawUri = true;
                reader.Read();
                if (reader.TokenType == JsonTokenType.String)
                {
                    uri = reader.GetString();
                }
                else
                {
                    uri = null;
                    reader.Skip();
                }
            }
            else if (reader.ValueTextEquals(ProtocolVersionProperty))
            {
                reader.Read();
                initializeVersion = reader.TokenType == JsonTokenType.String ? McpProtocolVersions.Read(ref reader) : null;
                reader.Skip();
            }
            else if (reader.ValueTextEquals(MetaProperty))
            {
                reader.Read();
                if (reader.TokenType == JsonTokenType.StartObject)
                {
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        var isVersion = reader.ValueTextEquals(MetaProtocolVersionProperty);
                        reader.Read();
                        if (isVersion && reader.TokenType == JsonTokenType.String)
                        {
                            metaVersion = McpProtocolVersions.Read(ref reader);
                        }

                        reader.Skip();
                    }
                }
                else
                {
                    reader.Skip();
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }

        return problem;
    }

    /// <summary>Throws <see cref="JsonException"/> if anything but whitespace follows the top-level value.</summary>
    private static void EnsureEnd(ref Utf8JsonReader reader)
    {
        if (reader.Read())
        {
            throw new JsonException("Trailing content after the JSON-RPC message.");
        }
    }
}
