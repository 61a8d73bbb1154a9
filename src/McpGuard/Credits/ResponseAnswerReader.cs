using System.Buffers.Text;
using System.Text;
using System.Text.Json;
using McpGuard.Protocol;

namespace McpGuard.Credits;

/// <summary>How the endpoint answered the charged request, as read from the response it wrote.</summary>
internal enum AnswerKind
{
    /// <summary>No JSON-RPC message answering the request has been written (yet).</summary>
    None,

    /// <summary>A <c>result</c>: the call was served.</summary>
    Result,

    /// <summary>A <c>result</c> whose <c>resultType</c> is not <c>complete</c>: the server asks the client for more input first.</summary>
    Incomplete,

    /// <summary>A tool result with <c>isError: true</c> whose <c>structuredContent.reason</c> is <c>internal_error</c>.</summary>
    ToolInternalError,

    /// <summary>An <c>error</c>.</summary>
    Error,
}

/// <summary>
/// Reads the response body of a charged call as the endpoint writes it, chunk by chunk, and finds the JSON-RPC message
/// that answers the charged request: an <c>application/json</c> body is one message; a <c>text/event-stream</c> body is
/// a series of events whose <c>data</c> lines each hold one. Only the top of each message is looked at (its <c>id</c>,
/// whether it has <c>result</c> or <c>error</c>, and in a result <c>resultType</c>, <c>isError</c> and
/// <c>structuredContent.reason</c>); nested values stream past without being kept, so memory stays constant whatever the
/// response's size, but for a bit per level of nesting and an id as long as the request's.
/// </summary>
internal sealed class ResponseAnswerReader(JsonRpcId id)
{
    private const int MaxCapture = 256;

    private readonly JsonScanner _json = new(IdCapacity(id));
    private Framing _framing = Framing.Unknown;

    /// <summary>How many bytes of a leading byte order mark the body has begun with; -1 once past its start.</summary>
    private int _bomSeen;

    // SSE line state.
    private bool _atLineStart = true;
    private bool _skipLineFeed;
    private bool _inData;
    private bool _sawColon;
    private bool _skipSpace;
    private bool _ignoreLine;
    private readonly byte[] _field = new byte[8];
    private int _fieldLength;
    private bool _eventHasData;

    private enum Framing
    {
        Unknown,
        Json,
        EventStream,
        Other,
    }

    /// <summary>
    /// The most bytes of an <c>id</c> value that can still be the charged request's: its JSON text is at most 6 bytes per
    /// UTF-16 character (a <c>\uXXXX</c> escape; a server's serializer may escape any character it likes). A longer id
    /// cannot be the request's; a shorter limit would leave a long id unread, and a served call unanswered and refunded.
    /// </summary>
    private static int IdCapacity(JsonRpcId id) =>
        id.ToObject() is string text ? (int)Math.Min(Array.MaxLength, Math.Max(MaxCapture, (6L * text.Length) + 2)) : MaxCapture;

    private static ReadOnlySpan<byte> Utf8Bom => [0xEF, 0xBB, 0xBF];

    /// <summary>The answer to the charged request, once written in full.</summary>
    public AnswerKind Answer { get; private set; }

    /// <summary>Whether at least one whole JSON-RPC message has been written.</summary>
    public bool FirstMessageComplete { get; private set; }

    /// <summary>
    /// Whether <see cref="Answer"/> can no longer change: it has been read, or the body is one JSON message that is
    /// complete, or the body is not JSON-RPC at all. A stream of events may still bring the answer until it ends.
    /// </summary>
    public bool IsFinal => Answer != AnswerKind.None || _framing == Framing.Other || (_framing == Framing.Json && FirstMessageComplete);

    /// <summary>Chooses how to read the body from its <c>Content-Type</c>, when the first byte is written.</summary>
    public void Start(string? contentType)
    {
        if (_framing != Framing.Unknown)
        {
            return;
        }

        _framing = HttpSyntax.IsEventStream(contentType) ? Framing.EventStream
            : HttpSyntax.IsJson(contentType) ? Framing.Json
            : Framing.Other;
    }

    public void Write(ReadOnlySpan<byte> bytes)
    {
        if (_bomSeen >= 0)
        {
            // A body may start with a UTF-8 byte order mark, which JSON readers and the event-stream format skip.
            while (!bytes.IsEmpty && _bomSeen < 3 && bytes[0] == Utf8Bom[_bomSeen])
            {
                _bomSeen++;
                bytes = bytes[1..];
            }

            if (_bomSeen < 3 && bytes.IsEmpty)
            {
                return;
            }

            var notABom = _bomSeen < 3 ? _bomSeen : 0;
            _bomSeen = -1;
            if (notABom > 0)
            {
                // The start of something else: read as it came.
                Push(Utf8Bom[..notABom]);
            }
        }

        Push(bytes);
    }

    private void Push(ReadOnlySpan<byte> bytes)
    {
        switch (_framing)
        {
            case Framing.Json:
                foreach (var b in bytes)
                {
                    if (_json.Push(b))
                    {
                        MessageEnded();
                    }
                }

                break;
            case Framing.EventStream:
                foreach (var b in bytes)
                {
                    PushEventStream(b);
                }

                break;
        }
    }

    /// <summary>The body is complete: an event not closed by a blank line still counts.</summary>
    public void Complete()
    {
        if (_bomSeen > 0)
        {
            // The body ended inside what looked like a byte order mark: it was not one.
            Push(Utf8Bom[.._bomSeen]);
        }

        _bomSeen = -1;
        if (_framing == Framing.EventStream && _eventHasData)
        {
            EndEvent();
        }
    }

    private void PushEventStream(byte b)
    {
        if (_skipLineFeed)
        {
            _skipLineFeed = false;
            if (b == (byte)'\n')
            {
                return;
            }
        }

        if (b is (byte)'\r' or (byte)'\n')
        {
            _skipLineFeed = b == (byte)'\r';
            EndLine();
            return;
        }

        if (_atLineStart)
        {
            _atLineStart = false;
            _fieldLength = 0;
            _sawColon = false;
            _inData = false;
            _ignoreLine = b == (byte)':';
        }

        if (_ignoreLine)
        {
            return;
        }

        if (!_sawColon)
        {
            if (b == (byte)':')
            {
                _sawColon = true;
                _skipSpace = true;
                _inData = _fieldLength == 4 && _field.AsSpan(0, 4).SequenceEqual("data"u8);
                if (_inData && _eventHasData)
                {
                    // Data lines of one event are joined by a line feed, which JSON reads as whitespace.
                    Feed((byte)'\n');
                }

                _eventHasData |= _inData;
                return;
            }

            if (_fieldLength < _field.Length)
            {
                _field[_fieldLength] = b;
            }

            _fieldLength++;
            return;
        }

        if (_skipSpace)
        {
            _skipSpace = false;
            if (b == (byte)' ')
            {
                return;
            }
        }

        if (_inData)
        {
            Feed(b);
        }
    }

    private void EndLine()
    {
        if (_atLineStart)
        {
            // A blank line dispatches the event.
            if (_eventHasData)
            {
                EndEvent();
            }

            return;
        }

        if (!_sawColon && _fieldLength == 4 && _field.AsSpan(0, 4).SequenceEqual("data"u8))
        {
            // "data" alone is a data line with an empty value.
            if (_eventHasData)
            {
                Feed((byte)'\n');
            }

            _eventHasData = true;
        }

        _atLineStart = true;
    }

    private void Feed(byte b)
    {
        if (_json.Push(b))
        {
            MessageEnded();
        }
    }

    private void EndEvent()
    {
        _eventHasData = false;
        _json.Reset();
    }

    private void MessageEnded()
    {
        FirstMessageComplete = true;
        if (Answer == AnswerKind.None && _json.Answers(id) is var answer and not AnswerKind.None)
        {
            Answer = answer;
        }

        _json.Reset();
    }

    /// <summary>
    /// A byte-at-a-time reader of one JSON value that remembers only the few members settlement needs. It assumes the
    /// JSON is well formed (the endpoint wrote it); malformed input simply never produces an answer.
    /// </summary>
    private sealed class JsonScanner(int idCapacity)
    {
        private const int TrackedDepth = 3;

        private readonly byte[] _key = new byte[MaxCapture];
        private byte[] _value = new byte[MaxCapture];
        private readonly Container[] _containers = new Container[TrackedDepth + 1];
        private int _depth;
        private State _state = State.Value;
        private bool _escape;
        private int _keyLength;
        private bool _keyEscaped;
        private Slot _slot;
        private int _valueLength;
        private bool _valueEscaped;
        private bool _captureOverflow;

        // What the message said.
        private bool _hasResult;
        private bool _hasError;
        private byte[]? _idText;
        private bool _idIsString;
        private bool _idEscaped;
        private bool _isError;
        private string? _resultType;
        private string? _reason;

        private enum State
        {
            Value,
            Key,
            KeyString,
            Colon,
            AfterValue,
            String,
            Literal,
        }

        /// <summary>What a container is to settlement.</summary>
        private enum Container : byte
        {
            Other,
            Message,
            Result,
            StructuredContent,
        }

        /// <summary>What the value being read is to settlement.</summary>
        private enum Slot : byte
        {
            None,
            Id,
            IsError,
            ResultType,
            Reason,
        }

        /// <summary>Whether the message so far is not JSON (a closing bracket with nothing open).</summary>
        private bool _broken;

        public void Reset()
        {
            _broken = false;
            _depth = 0;
            _state = State.Value;
            _escape = false;
            _slot = Slot.None;
            _hasResult = _hasError = _isError = false;
            _idText = null;
            _resultType = _reason = null;
        }

        /// <summary>Reads one byte; true when it ended the top-level value.</summary>
        public bool Push(byte b)
        {
            if (_broken)
            {
                return false;
            }

            switch (_state)
            {
                case State.String:
                case State.KeyString:
                    return PushString(b);

                case State.Literal:
                    if (b is (byte)',' or (byte)'}' or (byte)']' or (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
                    {
                        EndScalar();
                        _state = State.AfterValue;
                        return Push(b);
                    }

                    Capture(b);
                    return false;
            }

            if (b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
            {
                return false;
            }

            switch (_state)
            {
                case State.Value:
                    return StartValue(b);

                case State.Key:
                    if (b == (byte)'"')
                    {
                        _state = State.KeyString;
                        _keyLength = 0;
                        _keyEscaped = false;
                        _captureOverflow = false;
                    }
                    else if (b == (byte)'}')
                    {
                        return CloseContainer();
                    }

                    return false;

                case State.Colon:
                    if (b == (byte)':')
                    {
                        _state = State.Value;
                    }

                    return false;

                case State.AfterValue:
                    if (b == (byte)',')
                    {
                        _state = _depth > 0 && IsObject(_depth) ? State.Key : State.Value;
                        _slot = Slot.None;
                        return false;
                    }

                    if (b is (byte)'}' or (byte)']')
                    {
                        return CloseContainer();
                    }

                    return false;
            }

            return false;
        }

        private bool StartValue(byte b)
        {
            var parent = _depth == 0 ? Container.Other : (_depth <= TrackedDepth ? _containers[_depth] : Container.Other);
            var key = _depth == 0 ? default : KeyText();
            _slot = parent switch
            {
                Container.Message when key.SequenceEqual("id"u8) => Slot.Id,
                Container.Result when key.SequenceEqual("isError"u8) => Slot.IsError,
                Container.Result when key.SequenceEqual("resultType"u8) => Slot.ResultType,
                Container.StructuredContent when key.SequenceEqual("reason"u8) => Slot.Reason,
                _ => Slot.None,
            };

            if (parent == Container.Message)
            {
                _hasResult |= key.SequenceEqual("result"u8);
                _hasError |= key.SequenceEqual("error"u8);
            }

            switch (b)
            {
                case (byte)'{':
                case (byte)'[':
                    var isObject = b == (byte)'{';
                    var role = _depth == 0 && isObject ? Container.Message
                        : isObject && parent == Container.Message && key.SequenceEqual("result"u8) ? Container.Result
                        : isObject && parent == Container.Result && key.SequenceEqual("structuredContent"u8) ? Container.StructuredContent
                        : Container.Other;
                    _depth++;
                    if (_depth <= TrackedDepth)
                    {
                        _containers[_depth] = role;
                    }

                    SetObject(_depth, isObject);
                    _state = isObject ? State.Key : State.Value;
                    if (!isObject)
                    {
                        _emptyArrayPossible = true;
                    }

                    return false;

                case (byte)']' when _emptyArrayPossible:
                    // "[]": the array closes before any value.
                    _emptyArrayPossible = false;
                    return CloseContainer();

                case (byte)'"':
                    _emptyArrayPossible = false;
                    _state = State.String;
                    BeginCapture();
                    return false;

                default:
                    _emptyArrayPossible = false;
                    _state = State.Literal;
                    BeginCapture();
                    Capture(b);
                    return false;
            }
        }

        // Whether each open container is an object, a bit per depth, as deep as the message goes: a result nests as deep
        // as a tool makes it, and a depth read wrong would lose a closing bracket and, with it, the answer.
        private ulong[] _objects = new ulong[1];
        private bool _emptyArrayPossible;

        private bool IsObject(int depth) => (depth >> 6) < _objects.Length && (_objects[depth >> 6] & (1UL << (depth & 63))) != 0;

        private void SetObject(int depth, bool isObject)
        {
            var word = depth >> 6;
            if (word >= _objects.Length)
            {
                Array.Resize(ref _objects, Math.Max(word + 1, _objects.Length * 2));
            }

            _objects[word] = isObject ? _objects[word] | (1UL << (depth & 63)) : _objects[word] & ~(1UL << (depth & 63));
        }

        private bool CloseContainer()
        {
            if (_depth == 0)
            {
                // A bracket that closes nothing: not JSON. Nothing more of this message is read (an event stream's next
                // event starts afresh), so it answers nothing, as a JSON reader would refuse it.
                _broken = true;
                return false;
            }

            _depth--;
            _slot = Slot.None;
            _emptyArrayPossible = false;
            if (_depth == 0)
            {
                _state = State.Value;
                return true;
            }

            _state = State.AfterValue;
            return false;
        }

        private bool PushString(byte b)
        {
            var isKey = _state == State.KeyString;
            if (_escape)
            {
                _escape = false;
                CaptureStringByte(b, isKey);
                return false;
            }

            if (b == (byte)'\\')
            {
                _escape = true;
                if (isKey)
                {
                    _keyEscaped = true;
                }
                else
                {
                    _valueEscaped = true;
                }

                CaptureStringByte(b, isKey);
                return false;
            }

            if (b == (byte)'"')
            {
                if (isKey)
                {
                    _state = State.Colon;
                }
                else
                {
                    EndScalar();
                    _state = State.AfterValue;
                    if (_depth == 0)
                    {
                        // A top-level string is a whole (if useless) message.
                        return true;
                    }
                }

                return false;
            }

            CaptureStringByte(b, isKey);
            return false;
        }

        private void CaptureStringByte(byte b, bool isKey)
        {
            if (isKey)
            {
                if (_keyLength < _key.Length)
                {
                    _key[_keyLength] = b;
                }

                _keyLength++;
            }
            else
            {
                Capture(b);
            }
        }

        private void BeginCapture()
        {
            _valueLength = 0;
            _valueEscaped = false;
            _captureOverflow = false;
        }

        private void Capture(byte b)
        {
            if (_slot == Slot.None)
            {
                return;
            }

            if (_valueLength == _value.Length && _slot == Slot.Id && _valueLength < idCapacity)
            {
                // Only an id can be long and still matter (it may be the charged request's, however long that one is).
                Array.Resize(ref _value, (int)Math.Min(idCapacity, 2L * _value.Length));
            }

            if (_valueLength < _value.Length)
            {
                _value[_valueLength++] = b;
            }
            else
            {
                _captureOverflow = true;
            }
        }

        /// <summary>A <c>resultType</c> string too long to keep: whatever it says, it is not <c>complete</c>.</summary>
        private const string UnreadResultType = "(too long to read)";

        private void EndScalar()
        {
            if (_slot == Slot.None)
            {
                return;
            }

            if (_captureOverflow)
            {
                // Too long to be what settlement compares with: an id that is not the request's, a reason that is not
                // internal_error, an isError that is not true; but a resultType string that is not "complete".
                if (_slot == Slot.ResultType && _state == State.String)
                {
                    _resultType = UnreadResultType;
                }

                return;
            }

            var text = _value.AsSpan(0, _valueLength);
            var isString = _state == State.String;
            switch (_slot)
            {
                case Slot.Id:
                    _idText = text.ToArray();
                    _idIsString = isString;
                    _idEscaped = _valueEscaped;
                    break;
                case Slot.IsError:
                    _isError = !isString && text.SequenceEqual("true"u8);
                    break;
                case Slot.ResultType when isString:
                    _resultType = Decode(text, _valueEscaped);
                    break;
                case Slot.Reason when isString:
                    _reason = Decode(text, _valueEscaped);
                    break;
            }
        }

        /// <summary>The current member name, raw; an escaped or overlong name matches nothing settlement looks for.</summary>
        private ReadOnlySpan<byte> KeyText()
        {
            if (_keyLength > _key.Length)
            {
                return default;
            }

            if (!_keyEscaped)
            {
                return _key.AsSpan(0, _keyLength);
            }

            var decoded = Decode(_key.AsSpan(0, _keyLength), escaped: true);
            if (decoded is null || decoded.Length > _key.Length)
            {
                return default;
            }

            _keyLength = Encoding.UTF8.GetBytes(decoded, _key);
            _keyEscaped = false;
            return _key.AsSpan(0, _keyLength);
        }

        /// <summary>What this message says about the charged request, if it answers it.</summary>
        public AnswerKind Answers(JsonRpcId id)
        {
            if (_idText is null || (!_hasResult && !_hasError) || !IdEquals(id))
            {
                return AnswerKind.None;
            }

            if (_hasError && !_hasResult)
            {
                return AnswerKind.Error;
            }

            if (!_hasResult || _hasError)
            {
                // Both: not a valid response; nothing was served that the guard can vouch for.
                return AnswerKind.Error;
            }

            if (_resultType is not null && _resultType != "complete")
            {
                return AnswerKind.Incomplete;
            }

            return _isError && _reason == McpGuardReasons.InternalError ? AnswerKind.ToolInternalError : AnswerKind.Result;
        }

        private bool IdEquals(JsonRpcId id)
        {
            var text = _idText.AsSpan();
            if (_idIsString)
            {
                return id.ToObject() is string expected && Decode(text, _idEscaped) == expected;
            }

            return id.ToObject() is long number && Utf8Parser.TryParse(text, out long written, out var consumed) && consumed == text.Length && written == number;
        }

        private static string? Decode(ReadOnlySpan<byte> text, bool escaped)
        {
            if (!escaped)
            {
                return Encoding.UTF8.GetString(text);
            }

            // An id may be long (as long as the request's): only a short text goes on the stack.
            Span<byte> quoted = text.Length <= 510 ? stackalloc byte[512] : new byte[text.Length + 2];
            quoted = quoted[..(text.Length + 2)];
            quoted[0] = (byte)'"';
            text.CopyTo(quoted[1..]);
            quoted[^1] = (byte)'"';
            try
            {
                var reader = new Utf8JsonReader(quoted);
                reader.Read();
                return reader.GetString();
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException)
            {
                return null;
            }
        }
    }
}
