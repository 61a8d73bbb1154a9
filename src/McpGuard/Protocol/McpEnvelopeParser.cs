using System.Text;
using System.Text.Json;
using System.Text.Unicode;

namespace McpGuard.Protocol;

/// <summary>Why a body was refused by the parser.</summary>
internal readonly record struct EnvelopeFailure(string Reason, string Detail, JsonRpcId Id);

/// <summary>
/// Reads the JSON-RPC envelope of an MCP POST in one forward pass of a <see cref="Utf8JsonReader"/> over the
/// buffered body: no DOM, no second parse.
/// </summary>
/// <remarks>
/// <para>
/// <b>The one-reading rule.</b> McpGuard decides on the method, the tool / prompt name or resource uri, the id and
/// the protocol version. A body is accepted only when every reader that follows JSON and the MCP schema must see
/// the same values McpGuard saw, including one that matches member names ignoring letter case and lets the last
/// of two equal members win (the C# SDK's <c>System.Text.Json</c> options do both). So a body is refused when:
/// </para>
/// <list type="number">
/// <item>it is not one JSON object of valid UTF-8, or any string in it (a member name or a value, anywhere)
/// holds an unpaired UTF-16 surrogate escape, which no two decoders need read alike;</item>
/// <item>any object in it, at any depth, has two members whose names are equal ignoring case
/// (<see cref="StringComparison.OrdinalIgnoreCase"/>, the comparison case-insensitive readers use);</item>
/// <item>a member McpGuard reads is spelled other than the specification spells it: a member whose name equals
/// one of them ignoring case, but not exactly, is refused rather than ignored;</item>
/// <item>a member McpGuard reads does not have the type the specification gives it, where a gate decides on it:
/// the id is a string or an integer, the method a string, <c>params</c> an object, and the routing name of a
/// request (<c>name</c> for <c>tools/call</c> and <c>prompts/get</c>, <c>uri</c> for the <c>resources/</c> methods
/// that take one) a string.</item>
/// </list>
/// <para>
/// Everything else (unknown members, whatever their shape) passes through byte for byte. A property-based
/// differential test (<c>OneReadingDifferentialTests</c>) holds this reader against the SDK's own deserialization.
/// </para>
/// </remarks>
internal static class McpEnvelopeParser
{
    private const int MaxEchoedNameLength = 64;

    internal const string LoneSurrogateDetail = "Parse error: a string in the JSON-RPC envelope contains an unpaired surrogate escape (\\uD800-\\uDFFF).";

    /// <summary>The envelope members McpGuard reads, in <see cref="Field"/> order.</summary>
    private static readonly MemberName[] EnvelopeMembers =
    [
        new("jsonrpc", Field.JsonRpc), new("id", Field.Id), new("method", Field.Method),
        new("params", Field.Params), new("result", Field.Result), new("error", Field.Error),
    ];

    /// <summary>The members of <c>params</c> McpGuard reads.</summary>
    private static readonly MemberName[] ParamsMembers =
    [
        new("name", Field.Name), new("uri", Field.Uri), new("_meta", Field.Meta),
        new("protocolVersion", Field.InitializeVersion), new("arguments", Field.Arguments),
    ];

    /// <summary>The members of <c>params._meta</c> McpGuard reads.</summary>
    private static readonly MemberName[] MetaMembers =
    [
        new("io.modelcontextprotocol/protocolVersion", Field.MetaVersion),
        new("mcpguard/max_price_micro", Field.MetaMaxPrice),
    ];

    private static ReadOnlySpan<byte> Version20 => "2.0"u8;

    /// <summary>A member McpGuard reads, and what it is.</summary>
    private sealed class MemberName(string name, Field field)
    {
        public string Name { get; } = name;

        public byte[] Utf8 { get; } = Encoding.UTF8.GetBytes(name);

        public Field Field { get; } = field;
    }

    /// <summary>What the value after a member name is to McpGuard.</summary>
    private enum Field : byte
    {
        None,
        JsonRpc,
        Id,
        Method,
        Params,
        Result,
        Error,
        Name,
        Uri,
        Meta,
        InitializeVersion,
        Arguments,
        MetaVersion,
        MetaMaxPrice,
    }

    /// <summary>Which of McpGuard's objects a container is; everything nested elsewhere is <see cref="Other"/>.</summary>
    private enum Role : byte
    {
        Other,
        Envelope,
        Params,
        Meta,
        Array,
    }

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

        var state = new ParseState();
        var names = MemberNameTable.Rent();
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

            Walk(ref reader, body, names, ref state);
            EnsureEnd(ref reader);
        }
        catch (JsonException)
        {
            failure = new(McpGuardReasons.ParseError, "Parse error: the request body is not valid JSON.", default);
            return false;
        }
        finally
        {
            MemberNameTable.Return(names);
        }

        if (state.LoneSurrogate)
        {
            failure = new(McpGuardReasons.ParseError, LoneSurrogateDetail, default);
            return false;
        }

        if (!Finish(ref state, protocolVersionHeader, out envelope, out failure))
        {
            return false;
        }

        if (envelope!.Kind == McpMessageKind.Request && envelope.Method == McpMethods.Initialize
            && !McpMethods.IsRemovedAt(McpMethods.Initialize, protocolVersionHeader)
            && !InitializeParams.AreValid(state.ParamsEnd > state.ParamsStart ? body[state.ParamsStart..state.ParamsEnd] : default))
        {
            envelope = null;
            failure = new(McpGuardReasons.InvalidRequest, InitializeParams.Detail, state.Id);
            return false;
        }

        return true;
    }

    /// <summary>What one pass over the body found.</summary>
    private struct ParseState
    {
        public Seen Seen;
        public bool VersionOk;
        public bool IdValid;
        public JsonRpcId Id;
        public string? Method;
        public bool MethodValid;
        public bool NameIsString;
        public bool UriIsString;
        public string? Name;
        public string? Uri;
        public string? InitializeVersion;
        public string? MetaVersion;
        public long? MaxPrice;
        public bool LoneSurrogate;
        public string? Structural;
        public int ParamsStart;
        public int ParamsEnd;

        public ParseState()
        {
            IdValid = true;
            MethodValid = true;
        }
    }

    /// <summary>
    /// Walks the whole document from the root object's start to its end, checking every member name and string on
    /// the way and reading the values McpGuard decides on. The reader validates the JSON itself.
    /// </summary>
    private static void Walk(ref Utf8JsonReader reader, ReadOnlySpan<byte> body, MemberNameTable names, ref ParseState state)
    {
        var maxDepth = reader.CurrentState.Options.MaxDepth;
        Span<Role> roles = maxDepth < 256 ? stackalloc Role[maxDepth + 1] : new Role[maxDepth + 1];
        var depth = 0;
        roles[0] = Role.Envelope;
        names.Open();
        var pending = Field.None;

        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.PropertyName:
                    pending = ReadMemberName(ref reader, body, names, roles[depth], ref state);
                    continue;

                case JsonTokenType.StartObject:
                case JsonTokenType.StartArray:
                {
                    var isObject = reader.TokenType == JsonTokenType.StartObject;
                    if (pending == Field.Params && !isObject)
                    {
                        state.Structural ??= "Invalid Request: params must be an object.";
                    }

                    ValueOfWrongShape(pending, ref state);
                    roles[++depth] = isObject ? RoleOf(pending) : Role.Array;
                    if (roles[depth] == Role.Params)
                    {
                        state.ParamsStart = (int)reader.TokenStartIndex;
                    }

                    if (isObject)
                    {
                        names.Open();
                    }

                    break;
                }

                case JsonTokenType.EndObject:
                case JsonTokenType.EndArray:
                    if (reader.TokenType == JsonTokenType.EndObject)
                    {
                        names.Close();
                        if (roles[depth] == Role.Params)
                        {
                            state.ParamsEnd = (int)reader.BytesConsumed;
                        }
                    }

                    if (depth == 0)
                    {
                        return;
                    }

                    depth--;
                    break;

                case JsonTokenType.String:
                    if (reader.ValueIsEscaped && HasLoneSurrogate(reader.ValueSpan))
                    {
                        state.LoneSurrogate = true;
                        ValueOfWrongShape(pending, ref state);
                    }
                    else
                    {
                        ReadString(ref reader, pending, ref state);
                    }

                    break;

                default:
                    ReadScalar(ref reader, pending, ref state);
                    break;
            }

            pending = Field.None;
        }
    }

    private static Role RoleOf(Field field) => field switch
    {
        Field.Params => Role.Params,
        Field.Meta => Role.Meta,
        _ => Role.Other,
    };

    /// <summary>Checks a member name (its text, its uniqueness, its spelling) and says what its value is to McpGuard.</summary>
    private static Field ReadMemberName(ref Utf8JsonReader reader, ReadOnlySpan<byte> body, MemberNameTable names, Role role, ref ParseState state)
    {
        var raw = reader.ValueSpan;
        var escaped = reader.ValueIsEscaped;
        if (escaped && HasLoneSurrogate(raw))
        {
            // Not comparable with anything; the body is refused for it anyway.
            state.LoneSurrogate = true;
            return Field.None;
        }

        var simple = !escaped && System.Text.Ascii.IsValid(raw);
        var decoded = simple ? null : reader.GetString();
        var clash = names.Add(body, (int)reader.TokenStartIndex + 1, raw.Length, simple, decoded, out var clashName, out var newName);
        var known = role switch
        {
            Role.Envelope => EnvelopeMembers,
            Role.Params => ParamsMembers,
            Role.Meta => MetaMembers,
            _ => null,
        };

        var field = Field.None;
        MemberName? variant = null;
        if (known is not null)
        {
            field = Match(known, raw, decoded, out variant);
        }

        if (clash != MemberNameTable.Clash.None)
        {
            if (role == Role.Envelope && field == Field.Id)
            {
                // With two ids neither can be trusted, so none is echoed.
                state.IdValid = false;
            }

            state.Structural ??= clash == MemberNameTable.Clash.Exact
                ? $"Invalid Request: duplicate member '{Display(role, newName)}'."
                : $"Invalid Request: members '{Display(role, clashName)}' and '{Display(role, newName)}' differ only in letter case.";
        }
        else if (variant is not null)
        {
            state.Structural ??= $"Invalid Request: member '{Display(role, decoded ?? Encoding.UTF8.GetString(raw))}' must be spelled '{variant.Name}'.";
        }

        if (role == Role.Envelope)
        {
            state.Seen |= field switch
            {
                Field.JsonRpc => Seen.JsonRpc,
                Field.Id => Seen.Id,
                Field.Method => Seen.Method,
                Field.Params => Seen.Params,
                Field.Result => Seen.Result,
                Field.Error => Seen.Error,
                _ => Seen.None,
            };
        }

        return field;
    }

    /// <summary>
    /// The known member a name is, or none; when it is none but the name equals a known member ignoring case,
    /// <paramref name="variant"/> is that member. <paramref name="decoded"/> is null for unescaped ASCII names, which are
    /// compared as bytes.
    /// </summary>
    private static Field Match(MemberName[] known, ReadOnlySpan<byte> raw, string? decoded, out MemberName? variant)
    {
        variant = null;
        foreach (var member in known)
        {
            if (decoded is null)
            {
                if (member.Utf8.Length != raw.Length)
                {
                    continue;
                }

                if (raw.SequenceEqual(member.Utf8))
                {
                    return member.Field;
                }

                if (System.Text.Ascii.EqualsIgnoreCase(raw, member.Utf8))
                {
                    variant = member;
                }
            }
            else if (string.Equals(decoded, member.Name, StringComparison.Ordinal))
            {
                return member.Field;
            }
            else if (string.Equals(decoded, member.Name, StringComparison.OrdinalIgnoreCase))
            {
                variant = member;
            }
        }

        return Field.None;
    }

    /// <summary>A value that is an object or array where McpGuard reads a scalar (or the reverse for params).</summary>
    private static void ValueOfWrongShape(Field pending, ref ParseState state)
    {
        switch (pending)
        {
            case Field.Id:
                state.IdValid = false;
                break;
            case Field.Method:
                state.MethodValid = false;
                break;
            case Field.JsonRpc:
                state.VersionOk = false;
                break;
            case Field.Name:
                state.NameIsString = false;
                state.Name = null;
                break;
            case Field.Uri:
                state.UriIsString = false;
                state.Uri = null;
                break;
            case Field.InitializeVersion:
                state.InitializeVersion = null;
                break;
            case Field.MetaVersion:
                state.MetaVersion = null;
                break;
            case Field.MetaMaxPrice:
                state.Structural ??= MaxPriceShape;
                break;
        }
    }

    private const string MaxPriceShape = "Invalid Request: params._meta.mcpguard/max_price_micro must be a whole number of micro-units, 0 or more.";

    private static void ReadString(ref Utf8JsonReader reader, Field pending, ref ParseState state)
    {
        switch (pending)
        {
            case Field.JsonRpc:
                state.VersionOk = reader.ValueTextEquals(Version20);
                break;
            case Field.Id:
                state.Id = new JsonRpcId(reader.GetString()!);
                break;
            case Field.Method:
                state.Method = McpMethods.Read(ref reader);
                state.MethodValid = true;
                break;
            case Field.Name:
                state.Name = reader.GetString();
                state.NameIsString = true;
                break;
            case Field.Uri:
                state.Uri = reader.GetString();
                state.UriIsString = true;
                break;
            case Field.InitializeVersion:
                state.InitializeVersion = McpProtocolVersions.Read(ref reader);
                break;
            case Field.MetaVersion:
                state.MetaVersion = McpProtocolVersions.Read(ref reader);
                break;
            case Field.MetaMaxPrice:
                state.Structural ??= MaxPriceShape;
                break;
            case Field.Params:
                state.Structural ??= "Invalid Request: params must be an object.";
                break;
        }
    }

    private static void ReadScalar(ref Utf8JsonReader reader, Field pending, ref ParseState state)
    {
        switch (pending)
        {
            case Field.Id when reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var number):
                state.Id = new JsonRpcId(number);
                break;
            case Field.MetaMaxPrice when reader.TokenType == JsonTokenType.Number && reader.TryGetInt64(out var ceiling) && ceiling >= 0:
                state.MaxPrice = ceiling;
                break;
            case Field.Params:
                state.Structural ??= "Invalid Request: params must be an object.";
                break;
            default:
                ValueOfWrongShape(pending, ref state);
                break;
        }
    }

    private static bool Finish(ref ParseState state, string? protocolVersionHeader, out McpEnvelope? envelope, out EnvelopeFailure failure)
    {
        envelope = null;
        failure = default;

        // Echo the id only when it was read cleanly; JSON-RPC asks for null when it could not be.
        var echoId = state.IdValid ? state.Id : default;
        var seen = state.Seen;

        if (!state.VersionOk)
        {
            failure = new(McpGuardReasons.InvalidRequest, "Invalid Request: missing or invalid jsonrpc version", echoId);
            return false;
        }

        if (state.Structural is not null)
        {
            failure = new(McpGuardReasons.InvalidRequest, state.Structural, echoId);
            return false;
        }

        if (!state.IdValid)
        {
            failure = new(McpGuardReasons.InvalidRequest, "Invalid Request: id must be a string or an integer.", default);
            return false;
        }

        McpMessageKind kind;
        if ((seen & Seen.Method) != 0)
        {
            if (!state.MethodValid || state.Method is null)
            {
                failure = new(McpGuardReasons.InvalidRequest, "Invalid Request: method must be a string.", echoId);
                return false;
            }

            if ((seen & (Seen.Result | Seen.Error)) != 0)
            {
                failure = new(McpGuardReasons.InvalidRequest, "Invalid Request: a request cannot carry result or error.", echoId);
                return false;
            }

            kind = state.Id.IsNone ? McpMessageKind.Notification : McpMessageKind.Request;
        }
        else if ((seen & (Seen.Result | Seen.Error)) is Seen.Result or Seen.Error && !state.Id.IsNone)
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

        if (kind == McpMessageKind.Request && RoutingMember(state.Method!) is { } routing
            && !McpMethods.IsRemovedAt(state.Method!, protocolVersionHeader)
            && !(routing == Field.Name ? state.NameIsString : state.UriIsString))
        {
            var member = routing == Field.Name ? "name" : "uri";
            failure = new(McpGuardReasons.InvalidRequest, $"Invalid Request: {state.Method} needs params.{member} as a string.", echoId);
            return false;
        }

        envelope = new McpEnvelope
        {
            Kind = kind,
            Id = state.Id,
            Method = state.Method,
            Name = state.Name,
            Uri = state.Uri,
            MaxPriceMicro = state.MaxPrice,
            ProtocolVersion = !string.IsNullOrEmpty(protocolVersionHeader)
                ? protocolVersionHeader
                : state.MetaVersion ?? (state.Method == McpMethods.Initialize ? state.InitializeVersion : null),
        };
        return true;
    }

    /// <summary>The member a request of this method is routed on (and priced, limited and scoped by), if any.</summary>
    private static Field? RoutingMember(string method) => method switch
    {
        McpMethods.ToolsCall or McpMethods.PromptsGet => Field.Name,
        McpMethods.ResourcesRead or McpMethods.ResourcesSubscribe or McpMethods.ResourcesUnsubscribe => Field.Uri,
        _ => null,
    };

    /// <summary>A member's name as an error message shows it: with its path for McpGuard's objects, shortened when long.</summary>
    private static string Display(Role role, string name)
    {
        if (name.Length > MaxEchoedNameLength)
        {
            name = string.Concat(name.AsSpan(0, MaxEchoedNameLength), "…");
        }

        return role switch
        {
            Role.Params => "params." + name,
            Role.Meta => "params._meta." + name,
            _ => name,
        };
    }

    /// <summary>
    /// Whether escaped JSON string text holds a <c>\uD800</c>-<c>\uDFFF</c> escape that is not half of a high-low pair.
    /// Unescaped text cannot: the body is valid UTF-8, which cannot encode a surrogate.
    /// </summary>
    internal static bool HasLoneSurrogate(ReadOnlySpan<byte> escaped)
    {
        var pendingHigh = false;
        var i = 0;
        while (i < escaped.Length)
        {
            if (escaped[i] != (byte)'\\')
            {
                if (pendingHigh)
                {
                    return true;
                }

                i++;
                continue;
            }

            // The reader has validated the escapes: a backslash is followed by one of "\/bfnrtu, and u by four hex digits.
            if (escaped[i + 1] != (byte)'u')
            {
                if (pendingHigh)
                {
                    return true;
                }

                i += 2;
                continue;
            }

            var unit = HexValue(escaped.Slice(i + 2, 4));
            i += 6;
            if (unit is >= 0xD800 and <= 0xDBFF)
            {
                if (pendingHigh)
                {
                    return true;
                }

                pendingHigh = true;
            }
            else if (unit is >= 0xDC00 and <= 0xDFFF)
            {
                if (!pendingHigh)
                {
                    return true;
                }

                pendingHigh = false;
            }
            else if (pendingHigh)
            {
                return true;
            }
        }

        return pendingHigh;
    }

    private static int HexValue(ReadOnlySpan<byte> hex)
    {
        var value = 0;
        foreach (var b in hex)
        {
            value = (value << 4) | (b switch
            {
                >= (byte)'0' and <= (byte)'9' => b - '0',
                >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
                _ => b - 'A' + 10,
            });
        }

        return value;
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
