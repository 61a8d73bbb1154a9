using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using McpGuard.RateLimiting;
using StackExchange.Redis;

namespace McpGuard.Redis;

/// <summary>
/// The one Lua script that checks and spends every window of a call, and what it needs per chain of windows (the key
/// suffixes and the arguments), computed once per chain.
/// </summary>
/// <remarks>
/// Times in the script are whole microseconds since the Unix epoch, read from Redis (<c>TIME</c>). Lua numbers are
/// doubles, exact for integers below 2^53: microseconds stay below that until the year 2255, and every product the
/// script forms is bounded by a window's state (see <see cref="Plan"/>), so the arithmetic is exact integer arithmetic.
/// Per window the script takes four numbers after its kind:
/// <list type="bullet">
/// <item><c>F</c> (fixed window): window µs, permits. Hash <c>n</c> (window number since the epoch), <c>c</c> (permits used).</item>
/// <item><c>S</c> (sliding window): segment µs, segments, permits. Hash <c>n</c> (the latest segment number) and, per
/// segment still in the window that counted calls, its number → permits used (older ones are deleted as they slide out).</item>
/// <item><c>T</c> (token bucket): capacity, refill per µs, cost of a permit, window µs, in units of 1/g token-microseconds
/// where g = gcd(permits, window µs). Hash <c>l</c> (level), <c>t</c> (when it was last refilled).</item>
/// </list>
/// The answer is <c>{acquired, now µs, available₁, wait₁, …}</c>: wait is µs until the window has a permit (fixed and
/// sliding) or the level missing for one permit (token bucket, turned into time by the caller); 0 when it has one.
/// </remarks>
internal static class RedisRateLimitScript
{
    public const string Text = """
        -- McpGuard rate limits: check every window, then spend one permit of each only if all have one.
        -- Writes after TIME replicate as their effects (the default from Redis 5; older versions must be asked).
        if redis.replicate_commands then redis.replicate_commands() end
        local spend = ARGV[1] == '1'
        local now
        local expire = ARGV[2] == ''
        if expire then
          local t = redis.call('TIME')
          now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        else
          now = tonumber(ARGV[2])
        end
        local function div(x, y)
          local q = math.floor(x / y)
          if q * y > x then q = q - 1 elseif (q + 1) * y <= x then q = q + 1 end
          return q
        end
        local count = #KEYS
        local st = {}
        local acquired = true
        for i = 1, count do
          local at = 2 + (i - 1) * 5
          local kind = ARGV[at + 1]
          local a, b, c, d = tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4]), tonumber(ARGV[at + 5])
          local s = { kind = kind, a = a, b = b, c = c, d = d, wait = 0 }
          if kind == 'F' then
            local h = redis.call('HMGET', KEYS[i], 'n', 'c')
            local n, used = div(now, a), 0
            local hn = tonumber(h[1])
            if hn ~= nil and hn >= n then n = hn; used = tonumber(h[2]) or 0 end
            s.n = n; s.used = used; s.available = b - used
            if s.available < 1 then s.wait = (n + 1) * a - now end
          elseif kind == 'S' then
            -- Fields: 'n' (the latest segment number seen) and one per segment that counted calls, named by its number.
            local h = redis.call('HGETALL', KEYS[i])
            local n = div(now, a)
            for j = 1, #h, 2 do
              if h[j] == 'n' then n = math.max(n, tonumber(h[j + 1])) end
            end
            local live, stale, used = {}, {}, 0
            for j = 1, #h, 2 do
              if h[j] ~= 'n' then
                local segment, calls = tonumber(h[j]), tonumber(h[j + 1])
                if segment <= n - b then stale[#stale + 1] = h[j] else live[#live + 1] = segment; used = used + calls; s[segment] = calls end
              end
            end
            s.n = n; s.live = live; s.stale = stale; s.available = c - used
            if s.available < 1 then
              -- The oldest segments slide out first: wait until enough of them have.
              table.sort(live)
              local free = s.available
              s.wait = (n + b) * a - now
              for _, segment in ipairs(live) do
                free = free + s[segment]
                if free >= 1 then s.wait = (segment + b) * a - now; break end
              end
            end
          else
            local h = redis.call('HMGET', KEYS[i], 'l', 't')
            local level, last = tonumber(h[1]), tonumber(h[2])
            if level == nil or last == nil then level = a; last = now end
            if now > last then
              local elapsed = now - last
              if elapsed >= d then level = a else level = math.min(a, level + elapsed * b) end
              last = now
            end
            s.level = level; s.last = last; s.available = div(level, c)
            if s.available < 1 then s.wait = c - level end
          end
          if s.available < 1 then acquired = false end
          st[i] = s
        end
        local out = { acquired and 1 or 0, now }
        for i = 1, count do
          local s = st[i]
          if spend and acquired then
            local ttl
            if s.kind == 'F' then
              redis.call('HSET', KEYS[i], 'n', s.n, 'c', s.used + 1)
              ttl = (s.n + 1) * s.a - now
            elseif s.kind == 'S' then
              if #s.stale > 0 then redis.call('HDEL', KEYS[i], unpack(s.stale)) end
              redis.call('HSET', KEYS[i], 'n', s.n, s.n, (s[s.n] or 0) + 1)
              ttl = (s.n + s.b) * s.a - now
            else
              s.level = s.level - s.c
              redis.call('HSET', KEYS[i], 'l', s.level, 't', s.last)
              ttl = math.ceil((s.a - s.level) / s.b)
            end
            if expire then redis.call('PEXPIRE', KEYS[i], math.max(1, math.ceil(ttl / 1000))) end
            s.available = s.available - 1
          end
          out[#out + 1] = s.available
          out[#out + 1] = s.wait
        end
        return out
        """;

    /// <summary>The script's SHA-1, which <c>EVALSHA</c> names it by.</summary>
#pragma warning disable CA5350 // Redis names scripts by their SHA-1: an identifier, not a security measure.
    public static readonly byte[] Hash = SHA1.HashData(Encoding.UTF8.GetBytes(Text));
#pragma warning restore CA5350

    /// <summary>The arguments before the windows' own: spend or read, and "now" (empty: Redis's clock).</summary>
    public const int FixedArguments = 2;

    /// <summary>Arguments per window: its kind and four numbers.</summary>
    public const int ArgumentsPerWindow = 5;

    private static readonly SearchValues<char> Unsafe = SearchValues.Create("{}%");

    /// <summary>
    /// Escapes client-chosen text (a partition, a tool name) for a key: <c>{</c>, <c>}</c> and <c>%</c> become
    /// <c>%7B</c>, <c>%7D</c> and <c>%25</c>, so the partition's hash tag always ends where McpGuard ends it and two
    /// different texts never give one key. Empty text becomes <c>%</c> (which no escaped text is), so the hash tag is never <c>{}</c>.
    /// </summary>
    public static string Escape(string text)
    {
        if (text.Length == 0)
        {
            return "%";
        }

        if (text.AsSpan().IndexOfAny(Unsafe) < 0)
        {
            return text;
        }

        var escaped = new StringBuilder(text.Length + 8);
        foreach (var c in text)
        {
            escaped.Append(c switch
            {
                '{' => "%7B",
                '}' => "%7D",
                '%' => "%25",
                _ => null,
            } ?? c.ToString());
        }

        return escaped.ToString();
    }

    /// <summary>
    /// What the script needs for one chain of windows, computed once: each window's key suffix
    /// (<c>:&lt;policy&gt;:&lt;window&gt;</c>) and the arguments for spending and for reading.
    /// </summary>
    internal sealed class Plan
    {
        public Plan(IReadOnlyList<McpGuardRateLimiterWindow> windows)
        {
            Windows = [.. windows];
            Suffixes = new string[Windows.Length];
            _divisors = new long[Windows.Length];
            Spend = new RedisValue[FixedArguments + (ArgumentsPerWindow * Windows.Length)];
            Spend[0] = 1;
            Spend[1] = RedisValue.EmptyString;
            for (var i = 0; i < Windows.Length; i++)
            {
                var window = Windows[i];
                Suffixes[i] = $":{window.Policy}:{window.Name}";
                var (kind, a, b, c, d) = Arguments(window);
                _divisors[i] = kind == "T" ? window.Permits / b : 1;
                var at = FixedArguments + (i * ArgumentsPerWindow);
                Spend[at] = kind;
                Spend[at + 1] = a;
                Spend[at + 2] = b;
                Spend[at + 3] = c;
                Spend[at + 4] = d;
            }

            Read = (RedisValue[])Spend.Clone();
            Read[0] = 0;
        }

        // Token buckets: g = gcd(permits, window µs), the script's unit of level is 1/g token·µs.
        private readonly long[] _divisors;

        public McpGuardRateLimiterWindow[] Windows { get; }

        /// <summary><c>:&lt;policy&gt;:&lt;window&gt;</c> per window (<c>:tool:&lt;tool&gt;</c> follows for per-tool windows).</summary>
        public string[] Suffixes { get; }

        /// <summary>ARGV to spend a permit of each window, on Redis's clock.</summary>
        public RedisValue[] Spend { get; }

        /// <summary>ARGV to read the windows only, on Redis's clock.</summary>
        public RedisValue[] Read { get; }

        /// <summary>
        /// Turns token bucket <paramref name="index"/>'s missing level (in the script's units) into the exact wait, rounded
        /// up to a tick as ClockedRateLimiter rounds it.
        /// </summary>
        public TimeSpan TokenWait(int index, long missing)
        {
            var permits = Windows[index].Permits;
            // missing × g is the level missing in token·µs; the bucket refills `permits` of those per µs, 10 per tick.
            var scaled = (Int128)missing * _divisors[index] * 10;
            return TimeSpan.FromTicks((long)((scaled + permits - 1) / permits));
        }

        private static (string Kind, long A, long B, long C, long D) Arguments(McpGuardRateLimiterWindow window)
        {
            var ticks = window.Window.Ticks;
            if (ticks <= 0 || ticks % 10 != 0)
            {
                throw new NotSupportedException($"McpGuard.Redis counts in microseconds; window {window.Name} ({window.Window}) is not a whole number of them.");
            }

            var micros = ticks / 10;
            switch (window.Algorithm)
            {
                case McpGuardRateLimitAlgorithm.SlidingWindow:
                    var segmentTicks = ticks / window.Segments;
                    if (segmentTicks % 10 != 0)
                    {
                        throw new NotSupportedException($"McpGuard.Redis counts in microseconds; a segment of window {window.Name} ({window.Window} / {window.Segments}) is not a whole number of them.");
                    }

                    return ("S", segmentTicks / 10, window.Segments, window.Permits, 0);
                case McpGuardRateLimitAlgorithm.TokenBucket:
                    // The level is tokens × window µs, divided by g so that it stays small: capacity = lcm(permits, window µs).
                    var g = (long)System.Numerics.BigInteger.GreatestCommonDivisor(window.Permits, micros);
                    var refill = window.Permits / g;
                    var cost = micros / g;
                    if (!RateLimitOptionsValidation.RedisKeepsExact(window.Permits, window.Window))
                    {
                        throw new NotSupportedException(
                            $"McpGuard.Redis cannot keep token bucket {window.Name} ({window.Permits} per {window.Window}) exact: lcm(permits, window in µs) must be at most 2^52.");
                    }

                    return ("T", window.Permits * cost, refill, cost, micros);
                default:
                    return ("F", micros, window.Permits, 0, 0);
            }
        }
    }
}
