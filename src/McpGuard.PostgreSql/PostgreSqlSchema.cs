namespace McpGuard.PostgreSql;

/// <summary>
/// McpGuard's tables, functions and their migrations, in the schema of <c>McpGuard:PostgreSql:Schema</c>. Each migration
/// runs once, in order, recorded in <c>schema_version</c>; they are applied under a transaction-level advisory lock, so
/// instances starting together on an empty database take turns and the second finds the work done.
/// </summary>
internal static class PostgreSqlSchema
{
    /// <summary>The advisory lock's first key (with the schema name's hash as the second): "McpG" in ASCII.</summary>
    public const int AdvisoryLockClass = 0x4D63_7047;

    /// <summary>Outcome codes of <c>apply_batch</c> for a charge, in <see cref="McpGuardChargeOutcome"/>'s order.</summary>
    public const short Charged = 0, Free = 1, OutOfCredit = 2, CapReached = 3, Duplicate = 4;

    /// <summary>The migrations, version 1 first. {s} is the quoted schema, {channel} the quoted notification channel.</summary>
    public static readonly string[] Migrations =
    [
        """
        CREATE TABLE {s}.accounts (
            id text COLLATE "C" PRIMARY KEY,
            balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
            cap bigint CHECK (cap >= 0),
            month integer NOT NULL DEFAULT -1,
            month_spent bigint NOT NULL DEFAULT 0,
            month_free integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL);

        CREATE TABLE {s}.ledger (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            account text COLLATE "C" NOT NULL REFERENCES {s}.accounts (id),
            kind text NOT NULL CHECK (kind IN ('TopUp', 'Usage', 'Refund', 'Adjustment')),
            amount bigint NOT NULL,
            balance_after bigint NOT NULL CHECK (balance_after >= 0),
            tool text,
            request_id text,
            created_at timestamptz NOT NULL,
            free boolean NOT NULL DEFAULT false,
            note text);

        -- A request id is charged at most once and refunded at most once, whatever the number of instances.
        CREATE UNIQUE INDEX ledger_usage_request ON {s}.ledger (request_id) WHERE kind = 'Usage';
        CREATE UNIQUE INDEX ledger_refund_request ON {s}.ledger (request_id) WHERE kind = 'Refund';
        CREATE INDEX ledger_account_id ON {s}.ledger (account, id);

        CREATE TABLE {s}.api_keys (
            id text PRIMARY KEY,
            hash bytea NOT NULL UNIQUE,
            account text NOT NULL,
            scopes text NOT NULL,
            expires_at timestamptz,
            revoked boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL);

        CREATE TABLE {s}.account_status (account text PRIMARY KEY, suspended boolean NOT NULL);

        CREATE TABLE {s}.tool_status (tool text PRIMARY KEY, status text NOT NULL);

        -- Bumped (and announced on the channel) by every change to keys and statuses: instances poll it to catch a
        -- notification they missed.
        CREATE TABLE {s}.changes (id integer PRIMARY KEY CHECK (id = 1), version bigint NOT NULL);
        INSERT INTO {s}.changes VALUES (1, 0);

        CREATE FUNCTION {s}.changed() RETURNS bigint LANGUAGE plpgsql AS $$
        DECLARE v bigint;
        BEGIN
            UPDATE {s}.changes SET version = version + 1 WHERE id = 1 RETURNING version INTO v;
            PERFORM pg_notify({channelText}, v::text);
            RETURN v;
        END $$;

        CREATE FUNCTION {s}.month_of(t timestamptz) RETURNS integer LANGUAGE sql IMMUTABLE AS $$
            SELECT (extract(year FROM t AT TIME ZONE 'UTC')::integer * 12) + extract(month FROM t AT TIME ZONE 'UTC')::integer - 1
        $$;

        -- Locks (creating when asked) the given accounts in one order, so batches from any number of instances never deadlock.
        CREATE FUNCTION {s}.lock_accounts(p_accounts text[], p_create boolean[], p_now timestamptz) RETURNS void LANGUAGE plpgsql AS $$
        DECLARE acct text; want boolean;
        BEGIN
            FOR acct, want IN
                SELECT x.a, bool_or(x.c) FROM unnest(p_accounts, p_create) AS x(a, c) WHERE x.a IS NOT NULL GROUP BY x.a ORDER BY x.a COLLATE "C"
            LOOP
                PERFORM 1 FROM {s}.accounts WHERE id = acct FOR UPDATE;
                IF NOT FOUND AND want THEN
                    INSERT INTO {s}.accounts (id, created_at) VALUES (acct, p_now) ON CONFLICT (id) DO NOTHING;
                    PERFORM 1 FROM {s}.accounts WHERE id = acct FOR UPDATE;
                END IF;
            END LOOP;
        END $$;

        -- Charges (kind 0) and refunds (kind 1), in order, in one transaction: the group commit of one instance's writer.
        -- The rules are the embedded ledger's: a repeated id is refused, then the free tier pays, then the balance must
        -- cover the price, then the month's net spend plus the price must stay within the cap.
        CREATE FUNCTION {s}.apply_batch(
            p_kind smallint[], p_account text[], p_request text[], p_tool text[], p_price bigint[],
            p_free_calls integer[], p_now timestamptz[], p_new boolean[])
        RETURNS TABLE (r_outcome smallint, r_balance bigint, r_spent bigint, r_cap bigint)
        LANGUAGE plpgsql AS $$
        DECLARE
            n integer := coalesce(array_length(p_kind, 1), 0);
            accts text[] := p_account;
            creates boolean[] := array_fill(false, ARRAY[n]);
            i integer; j integer; m integer; new_id bigint; owner text;
            a {s}.accounts%ROWTYPE;
            u record;
        BEGIN
            FOR i IN 1..n LOOP
                IF p_kind[i] = 0 THEN
                    creates[i] := true;
                ELSE
                    owner := NULL;
                    SELECT l.account INTO owner FROM {s}.ledger l WHERE l.request_id = p_request[i] AND l.kind = 'Usage';
                    accts[i] := owner;
                    IF owner IS NULL THEN
                        FOR j IN 1..i - 1 LOOP
                            IF p_kind[j] = 0 AND p_request[j] = p_request[i] THEN accts[i] := p_account[j]; END IF;
                        END LOOP;
                    END IF;
                END IF;
            END LOOP;

            PERFORM {s}.lock_accounts(accts, creates, p_now[1]);

            FOR i IN 1..n LOOP
                IF p_kind[i] = 0 THEN
                    SELECT * INTO a FROM {s}.accounts WHERE id = p_account[i];
                    m := {s}.month_of(p_now[i]);
                    IF m > a.month THEN a.month := m; a.month_spent := 0; a.month_free := 0; END IF;
                    new_id := NULL;
                    IF NOT p_new[i] AND EXISTS (SELECT 1 FROM {s}.ledger WHERE request_id = p_request[i] AND kind = 'Usage') THEN
                        r_outcome := 4;
                    ELSIF p_free_calls[i] - a.month_free > 0 THEN
                        INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                        VALUES (a.id, 'Usage', 0, a.balance, p_tool[i], p_request[i], p_now[i], true)
                        ON CONFLICT (request_id) WHERE kind = 'Usage' DO NOTHING RETURNING id INTO new_id;
                        IF new_id IS NULL THEN r_outcome := 4; ELSE a.month_free := a.month_free + 1; r_outcome := 1; END IF;
                    ELSIF a.balance < p_price[i] THEN
                        r_outcome := 2;
                    ELSIF a.cap IS NOT NULL AND a.month_spent + p_price[i] > a.cap THEN
                        r_outcome := 3;
                    ELSE
                        INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                        VALUES (a.id, 'Usage', -p_price[i], a.balance - p_price[i], p_tool[i], p_request[i], p_now[i], false)
                        ON CONFLICT (request_id) WHERE kind = 'Usage' DO NOTHING RETURNING id INTO new_id;
                        IF new_id IS NULL THEN
                            r_outcome := 4;
                        ELSE
                            a.balance := a.balance - p_price[i]; a.month_spent := a.month_spent + p_price[i]; r_outcome := 0;
                        END IF;
                    END IF;
                    UPDATE {s}.accounts SET balance = a.balance, month = a.month, month_spent = a.month_spent, month_free = a.month_free
                    WHERE id = a.id AND (balance, month, month_spent, month_free) IS DISTINCT FROM (a.balance, a.month, a.month_spent, a.month_free);
                    r_balance := a.balance; r_spent := a.month_spent; r_cap := a.cap;
                ELSE
                    r_outcome := 0; r_balance := NULL; r_spent := NULL; r_cap := NULL;
                    SELECT l.account, l.tool, -l.amount AS amount, l.free, {s}.month_of(l.created_at) AS month INTO u
                    FROM {s}.ledger l WHERE l.request_id = p_request[i] AND l.kind = 'Usage';
                    -- Nothing charged (or charged, by another instance, after this batch locked its accounts: asked again later).
                    IF FOUND AND u.account = accts[i] THEN
                        SELECT * INTO a FROM {s}.accounts WHERE id = u.account;
                        INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                        VALUES (a.id, 'Refund', u.amount, a.balance + u.amount, u.tool, p_request[i], p_now[i], u.free)
                        ON CONFLICT (request_id) WHERE kind = 'Refund' DO NOTHING RETURNING id INTO new_id;
                        IF new_id IS NOT NULL THEN
                            m := {s}.month_of(p_now[i]);
                            IF m > a.month THEN a.month := m; a.month_spent := 0; a.month_free := 0; END IF;
                            a.balance := a.balance + u.amount;
                            IF u.month = a.month THEN
                                IF u.free THEN a.month_free := a.month_free - 1; ELSE a.month_spent := a.month_spent - u.amount; END IF;
                            END IF;
                            UPDATE {s}.accounts SET balance = a.balance, month = a.month, month_spent = a.month_spent, month_free = a.month_free
                            WHERE id = a.id;
                            r_outcome := 1;
                        END IF;
                    END IF;
                END IF;
                RETURN NEXT;
            END LOOP;
        END $$;

        -- A top-up or an adjustment: null id when it would take the balance below zero (the account is created either way).
        CREATE FUNCTION {s}.move(p_account text, p_kind text, p_amount bigint, p_note text, p_now timestamptz)
        RETURNS TABLE (r_id bigint, r_balance bigint)
        LANGUAGE plpgsql AS $$
        DECLARE b bigint;
        BEGIN
            PERFORM {s}.lock_accounts(ARRAY[p_account], ARRAY[true], p_now);
            SELECT balance INTO b FROM {s}.accounts WHERE id = p_account;
            IF b + p_amount < 0 THEN
                r_id := NULL; r_balance := b;
            ELSE
                INSERT INTO {s}.ledger (account, kind, amount, balance_after, created_at, note)
                VALUES (p_account, p_kind, p_amount, b + p_amount, p_now, p_note) RETURNING id INTO r_id;
                UPDATE {s}.accounts SET balance = b + p_amount WHERE id = p_account;
                r_balance := b + p_amount;
            END IF;
            RETURN NEXT;
        END $$;
        """,
        """
        -- Facts about the ledger itself. 'seeded': McpGuard:Accounts was applied (written in the seed's transaction). A
        -- ledger that has accounts from before this version was seeded (or never will be): it counts as seeded.
        CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL);
        INSERT INTO {s}.meta (key, value) SELECT 'seeded', 'before schema version 2' WHERE EXISTS (SELECT 1 FROM {s}.accounts);

        -- Charges (kind 0), refunds (kind 1) and refunds of one attempt (kind 2: only the usage row of that request id,
        -- account and p_charged time), in order, in one transaction: the group commit of one instance's writer. The rules
        -- are the embedded ledger's: a repeated id is refused, then the free tier pays, then the balance must cover the
        -- price, then the month's net spend plus the price must stay within the cap. A charge counts toward the month's
        -- totals only when it is of the account's current month (an older one changes the balance only); a refund takes
        -- it back out only when its charge is of the account's month after the refund's time rolled it.
        CREATE FUNCTION {s}.apply_batch(
            p_kind smallint[], p_account text[], p_request text[], p_tool text[], p_price bigint[],
            p_free_calls integer[], p_now timestamptz[], p_new boolean[], p_charged timestamptz[])
        RETURNS TABLE (r_outcome smallint, r_balance bigint, r_spent bigint, r_cap bigint)
        LANGUAGE plpgsql AS $$
        DECLARE
            n integer := coalesce(array_length(p_kind, 1), 0);
            accts text[] := p_account;
            creates boolean[] := array_fill(false, ARRAY[n]);
            i integer; j integer; m integer; new_id bigint; owner text;
            a {s}.accounts%ROWTYPE;
            u record;
        BEGIN
            FOR i IN 1..n LOOP
                IF p_kind[i] = 0 THEN
                    creates[i] := true;
                ELSIF p_kind[i] = 1 THEN
                    owner := NULL;
                    SELECT l.account INTO owner FROM {s}.ledger l WHERE l.request_id = p_request[i] AND l.kind = 'Usage';
                    accts[i] := owner;
                    IF owner IS NULL THEN
                        FOR j IN 1..i - 1 LOOP
                            IF p_kind[j] = 0 AND p_request[j] = p_request[i] THEN accts[i] := p_account[j]; END IF;
                        END LOOP;
                    END IF;
                END IF;
                -- Kind 2 names its account: that one is locked (never created).
            END LOOP;

            PERFORM {s}.lock_accounts(accts, creates, p_now[1]);

            FOR i IN 1..n LOOP
                IF p_kind[i] = 0 THEN
                    SELECT * INTO a FROM {s}.accounts WHERE id = p_account[i];
                    m := {s}.month_of(p_now[i]);
                    IF m > a.month THEN a.month := m; a.month_spent := 0; a.month_free := 0; END IF;
                    new_id := NULL;
                    IF NOT p_new[i] AND EXISTS (SELECT 1 FROM {s}.ledger WHERE request_id = p_request[i] AND kind = 'Usage') THEN
                        r_outcome := 4;
                    ELSIF p_free_calls[i] - a.month_free > 0 THEN
                        INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                        VALUES (a.id, 'Usage', 0, a.balance, p_tool[i], p_request[i], p_now[i], true)
                        ON CONFLICT (request_id) WHERE kind = 'Usage' DO NOTHING RETURNING id INTO new_id;
                        IF new_id IS NULL THEN
                            r_outcome := 4;
                        ELSE
                            IF m = a.month THEN a.month_free := a.month_free + 1; END IF;
                            r_outcome := 1;
                        END IF;
                    ELSIF a.balance < p_price[i] THEN
                        r_outcome := 2;
                    ELSIF a.cap IS NOT NULL AND a.month_spent + p_price[i] > a.cap THEN
                        r_outcome := 3;
                    ELSE
                        INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                        VALUES (a.id, 'Usage', -p_price[i], a.balance - p_price[i], p_tool[i], p_request[i], p_now[i], false)
                        ON CONFLICT (request_id) WHERE kind = 'Usage' DO NOTHING RETURNING id INTO new_id;
                        IF new_id IS NULL THEN
                            r_outcome := 4;
                        ELSE
                            a.balance := a.balance - p_price[i];
                            IF m = a.month THEN a.month_spent := a.month_spent + p_price[i]; END IF;
                            r_outcome := 0;
                        END IF;
                    END IF;
                    UPDATE {s}.accounts SET balance = a.balance, month = a.month, month_spent = a.month_spent, month_free = a.month_free
                    WHERE id = a.id AND (balance, month, month_spent, month_free) IS DISTINCT FROM (a.balance, a.month, a.month_spent, a.month_free);
                    r_balance := a.balance; r_spent := a.month_spent; r_cap := a.cap;
                ELSE
                    r_outcome := 0; r_balance := NULL; r_spent := NULL; r_cap := NULL;
                    SELECT l.account, l.tool, -l.amount AS amount, l.free, {s}.month_of(l.created_at) AS month INTO u
                    FROM {s}.ledger l WHERE l.request_id = p_request[i] AND l.kind = 'Usage'
                    AND (p_kind[i] = 1 OR (l.account = p_account[i] AND l.created_at = p_charged[i]));
                    -- Nothing charged (or charged, by another instance, after this batch locked its accounts: asked again later).
                    IF FOUND AND u.account = accts[i] THEN
                        SELECT * INTO a FROM {s}.accounts WHERE id = u.account;
                        INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                        VALUES (a.id, 'Refund', u.amount, a.balance + u.amount, u.tool, p_request[i], p_now[i], u.free)
                        ON CONFLICT (request_id) WHERE kind = 'Refund' DO NOTHING RETURNING id INTO new_id;
                        IF new_id IS NOT NULL THEN
                            m := {s}.month_of(p_now[i]);
                            IF m > a.month THEN a.month := m; a.month_spent := 0; a.month_free := 0; END IF;
                            a.balance := a.balance + u.amount;
                            IF u.month = a.month THEN
                                IF u.free THEN a.month_free := a.month_free - 1; ELSE a.month_spent := a.month_spent - u.amount; END IF;
                            END IF;
                            UPDATE {s}.accounts SET balance = a.balance, month = a.month, month_spent = a.month_spent, month_free = a.month_free
                            WHERE id = a.id;
                            r_outcome := 1;
                        END IF;
                    END IF;
                END IF;
                RETURN NEXT;
            END LOOP;
        END $$;

        -- Version 1's signature, kept for instances not upgraded yet: the same rules.
        CREATE OR REPLACE FUNCTION {s}.apply_batch(
            p_kind smallint[], p_account text[], p_request text[], p_tool text[], p_price bigint[],
            p_free_calls integer[], p_now timestamptz[], p_new boolean[])
        RETURNS TABLE (r_outcome smallint, r_balance bigint, r_spent bigint, r_cap bigint)
        LANGUAGE sql AS $$
            SELECT * FROM {s}.apply_batch(p_kind, p_account, p_request, p_tool, p_price, p_free_calls, p_now, p_new, p_now)
        $$;
        """,
        """
        -- Metered prices (reserve, then capture or release). The ledger takes three more kinds of rows; the constraint is
        -- replaced NOT VALID, so the rows already there are not read (every row written from now on is checked).
        ALTER TABLE {s}.ledger DROP CONSTRAINT IF EXISTS ledger_kind_check;
        ALTER TABLE {s}.ledger ADD CONSTRAINT ledger_kind_check
            CHECK (kind IN ('TopUp', 'Usage', 'Refund', 'Adjustment', 'Reservation', 'Capture', 'Release')) NOT VALID;

        -- One row per reservation ever placed, beside its Reservation row: its primary key reserves a request id at most
        -- once, whatever the number of instances. held: its hold still stands (neither captured nor released); captured:
        -- what its capture took. Every change to a row is made with its account locked, and held only ever goes from true
        -- to false (by a conditional update), so a reservation is captured or released at most once. The partial index
        -- finds the holds still standing (a start, or the release of those whose instance died) without reading the rest.
        CREATE TABLE {s}.reservations (
            request_id text COLLATE "C" PRIMARY KEY,
            account text COLLATE "C" NOT NULL,
            tool text,
            amount bigint NOT NULL CHECK (amount >= 0),
            placed_at timestamptz NOT NULL,
            held boolean NOT NULL DEFAULT true,
            captured bigint CHECK (captured >= 0 AND captured <= amount));
        CREATE INDEX reservations_held ON {s}.reservations (placed_at) WHERE held;

        -- Version 3 answers more (the capture row of kind 4): a new return type, so both signatures are made again.
        DROP FUNCTION {s}.apply_batch(smallint[], text[], text[], text[], bigint[], integer[], timestamptz[], boolean[]);
        DROP FUNCTION {s}.apply_batch(smallint[], text[], text[], text[], bigint[], integer[], timestamptz[], boolean[], timestamptz[]);

        -- Charges (kind 0), refunds (kind 1), refunds of one attempt (kind 2: only the charge of that request id, account
        -- and p_charged time), reservations (kind 3: a charge that holds p_price) and captures (kind 4: p_price is what the
        -- call used), in order, in one transaction: the group commit of one instance's writer. The rules are the embedded
        -- ledger's: a repeated id is refused, then the free tier pays, then the balance must cover the price, then the
        -- month's net spend plus the price must stay within the cap. A charge counts toward the month's totals only when it
        -- is of the account's current month (an older one changes the balance only); a refund takes it back out only when
        -- its charge is of the account's month after the refund's time rolled it. A hold counts in the month it was placed
        -- until it is settled: a capture releases it whole (a Release row) and takes what was used, at most the hold (a
        -- Capture row, counted instead of the hold); a refund of a hold releases it; a refund of a capture refunds what it
        -- took. A request id is charged at most once whatever its kind: a reservation of a client's id claims the id in
        -- the usage rows' unique index while its transaction runs (its row is written as a usage row, then made a
        -- reservation), so it waits for a charge of the same id being written by another instance; a charge of a client's
        -- id looks for a reservation of it once its own row is written (and takes that row back out when there is one).
        CREATE FUNCTION {s}.apply_batch(
            p_kind smallint[], p_account text[], p_request text[], p_tool text[], p_price bigint[],
            p_free_calls integer[], p_now timestamptz[], p_new boolean[], p_charged timestamptz[])
        RETURNS TABLE (r_outcome smallint, r_balance bigint, r_spent bigint, r_cap bigint, r_id bigint, r_amount bigint, r_account text, r_tool text)
        LANGUAGE plpgsql AS $$
        DECLARE
            n integer := coalesce(array_length(p_kind, 1), 0);
            accts text[] := p_account;
            creates boolean[] := array_fill(false, ARRAY[n]);
            i integer; j integer; m integer; placed integer; new_id bigint; owner text;
            a {s}.accounts%ROWTYPE;
            h {s}.reservations%ROWTYPE;
            u record;
        BEGIN
            FOR i IN 1..n LOOP
                IF p_kind[i] IN (0, 3) THEN
                    creates[i] := true;
                ELSIF p_kind[i] IN (1, 4) THEN
                    owner := NULL;
                    IF p_kind[i] = 1 THEN
                        SELECT l.account INTO owner FROM {s}.ledger l WHERE l.request_id = p_request[i] AND l.kind = 'Usage';
                    END IF;
                    IF owner IS NULL THEN
                        SELECT r.account INTO owner FROM {s}.reservations r WHERE r.request_id = p_request[i] AND (p_kind[i] = 1 OR r.held);
                    END IF;
                    accts[i] := owner;
                    IF owner IS NULL THEN
                        FOR j IN 1..i - 1 LOOP
                            IF p_kind[j] IN (0, 3) AND p_request[j] = p_request[i] THEN accts[i] := p_account[j]; END IF;
                        END LOOP;
                    END IF;
                END IF;
                -- Kind 2 names its account: that one is locked (never created).
            END LOOP;

            PERFORM {s}.lock_accounts(accts, creates, p_now[1]);

            FOR i IN 1..n LOOP
                r_id := NULL; r_amount := NULL; r_account := NULL; r_tool := NULL;
                IF p_kind[i] IN (0, 3) THEN
                    SELECT * INTO a FROM {s}.accounts WHERE id = p_account[i];
                    m := {s}.month_of(p_now[i]);
                    IF m > a.month THEN a.month := m; a.month_spent := 0; a.month_free := 0; END IF;
                    new_id := NULL;
                    IF NOT p_new[i] AND EXISTS (SELECT 1 FROM {s}.ledger WHERE request_id = p_request[i] AND kind = 'Usage') THEN
                        r_outcome := 4;
                    ELSIF p_free_calls[i] - a.month_free > 0 THEN
                        INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                        VALUES (a.id, 'Usage', 0, a.balance, p_tool[i], p_request[i], p_now[i], true)
                        ON CONFLICT (request_id) WHERE kind = 'Usage' DO NOTHING RETURNING id INTO new_id;
                        IF new_id IS NULL THEN
                            r_outcome := 4;
                        ELSIF NOT p_new[i] AND EXISTS (SELECT 1 FROM {s}.reservations WHERE request_id = p_request[i]) THEN
                            DELETE FROM {s}.ledger WHERE id = new_id;
                            r_outcome := 4;
                        ELSE
                            IF m = a.month THEN a.month_free := a.month_free + 1; END IF;
                            r_outcome := 1;
                        END IF;
                    ELSIF a.balance < p_price[i] THEN
                        r_outcome := CASE WHEN NOT p_new[i] AND EXISTS (SELECT 1 FROM {s}.reservations WHERE request_id = p_request[i]) THEN 4 ELSE 2 END;
                    ELSIF a.cap IS NOT NULL AND a.month_spent + p_price[i] > a.cap THEN
                        r_outcome := CASE WHEN NOT p_new[i] AND EXISTS (SELECT 1 FROM {s}.reservations WHERE request_id = p_request[i]) THEN 4 ELSE 3 END;
                    ELSIF p_kind[i] = 0 THEN
                        INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                        VALUES (a.id, 'Usage', -p_price[i], a.balance - p_price[i], p_tool[i], p_request[i], p_now[i], false)
                        ON CONFLICT (request_id) WHERE kind = 'Usage' DO NOTHING RETURNING id INTO new_id;
                        IF new_id IS NULL THEN
                            r_outcome := 4;
                        ELSIF NOT p_new[i] AND EXISTS (SELECT 1 FROM {s}.reservations WHERE request_id = p_request[i]) THEN
                            DELETE FROM {s}.ledger WHERE id = new_id;
                            r_outcome := 4;
                        ELSE
                            a.balance := a.balance - p_price[i];
                            IF m = a.month THEN a.month_spent := a.month_spent + p_price[i]; END IF;
                            r_outcome := 0;
                        END IF;
                    ELSE
                        INSERT INTO {s}.reservations (request_id, account, tool, amount, placed_at)
                        VALUES (p_request[i], a.id, p_tool[i], p_price[i], p_now[i])
                        ON CONFLICT (request_id) DO NOTHING RETURNING 1 INTO new_id;
                        IF new_id IS NOT NULL THEN
                            new_id := NULL;
                            IF p_new[i] THEN
                                INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                                VALUES (a.id, 'Reservation', -p_price[i], a.balance - p_price[i], p_tool[i], p_request[i], p_now[i], false)
                                RETURNING id INTO new_id;
                            ELSE
                                INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                                VALUES (a.id, 'Usage', -p_price[i], a.balance - p_price[i], p_tool[i], p_request[i], p_now[i], false)
                                ON CONFLICT (request_id) WHERE kind = 'Usage' DO NOTHING RETURNING id INTO new_id;
                                IF new_id IS NOT NULL THEN
                                    UPDATE {s}.ledger SET kind = 'Reservation' WHERE id = new_id;
                                ELSE
                                    DELETE FROM {s}.reservations WHERE request_id = p_request[i];
                                END IF;
                            END IF;
                        END IF;
                        IF new_id IS NULL THEN
                            r_outcome := 4;
                        ELSE
                            a.balance := a.balance - p_price[i];
                            IF m = a.month THEN a.month_spent := a.month_spent + p_price[i]; END IF;
                            r_outcome := 0;
                        END IF;
                    END IF;
                    UPDATE {s}.accounts SET balance = a.balance, month = a.month, month_spent = a.month_spent, month_free = a.month_free
                    WHERE id = a.id AND (balance, month, month_spent, month_free) IS DISTINCT FROM (a.balance, a.month, a.month_spent, a.month_free);
                    r_balance := a.balance; r_spent := a.month_spent; r_cap := a.cap;
                ELSIF p_kind[i] = 4 THEN
                    r_outcome := 0; r_balance := NULL; r_spent := NULL; r_cap := NULL;
                    -- Nothing held (never reserved, captured, released, or reserved by another instance after this batch
                    -- locked its accounts: its caller has not been answered, so cannot capture it yet).
                    UPDATE {s}.reservations SET held = false, captured = least(p_price[i], amount)
                    WHERE request_id = p_request[i] AND held AND account = accts[i]
                    RETURNING * INTO h;
                    IF FOUND THEN
                        SELECT * INTO a FROM {s}.accounts WHERE id = h.account;
                        m := {s}.month_of(p_now[i]);
                        IF m > a.month THEN a.month := m; a.month_spent := 0; a.month_free := 0; END IF;
                        placed := {s}.month_of(h.placed_at);
                        INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                        VALUES (a.id, 'Release', h.amount, a.balance + h.amount, h.tool, h.request_id, p_now[i], false);
                        a.balance := a.balance + h.amount;
                        INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                        VALUES (a.id, 'Capture', -h.captured, a.balance - h.captured, h.tool, h.request_id, p_now[i], false)
                        RETURNING id INTO new_id;
                        a.balance := a.balance - h.captured;
                        IF placed = a.month THEN a.month_spent := a.month_spent - h.amount + h.captured; END IF;
                        UPDATE {s}.accounts SET balance = a.balance, month = a.month, month_spent = a.month_spent, month_free = a.month_free
                        WHERE id = a.id;
                        r_outcome := 1; r_balance := a.balance; r_spent := a.month_spent; r_cap := a.cap;
                        r_id := new_id; r_amount := -h.captured; r_account := a.id; r_tool := h.tool;
                    END IF;
                ELSE
                    r_outcome := 0; r_balance := NULL; r_spent := NULL; r_cap := NULL;
                    SELECT l.account, l.tool, -l.amount AS amount, l.free, {s}.month_of(l.created_at) AS month INTO u
                    FROM {s}.ledger l WHERE l.request_id = p_request[i] AND l.kind = 'Usage'
                    AND (p_kind[i] = 1 OR (l.account = p_account[i] AND l.created_at = p_charged[i]));
                    -- Nothing charged (or charged, by another instance, after this batch locked its accounts: asked again later).
                    IF FOUND THEN
                        IF u.account = accts[i] THEN
                            SELECT * INTO a FROM {s}.accounts WHERE id = u.account;
                            INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                            VALUES (a.id, 'Refund', u.amount, a.balance + u.amount, u.tool, p_request[i], p_now[i], u.free)
                            ON CONFLICT (request_id) WHERE kind = 'Refund' DO NOTHING RETURNING id INTO new_id;
                            IF new_id IS NOT NULL THEN
                                m := {s}.month_of(p_now[i]);
                                IF m > a.month THEN a.month := m; a.month_spent := 0; a.month_free := 0; END IF;
                                a.balance := a.balance + u.amount;
                                IF u.month = a.month THEN
                                    IF u.free THEN a.month_free := a.month_free - 1; ELSE a.month_spent := a.month_spent - u.amount; END IF;
                                END IF;
                                UPDATE {s}.accounts SET balance = a.balance, month = a.month, month_spent = a.month_spent, month_free = a.month_free
                                WHERE id = a.id;
                                r_outcome := 1;
                            END IF;
                        END IF;
                    ELSE
                        -- A reservation: released whole while it is held, its capture refunded once it was captured, nothing
                        -- once it was released.
                        SELECT * INTO h FROM {s}.reservations r WHERE r.request_id = p_request[i]
                        AND (p_kind[i] = 1 OR (r.account = p_account[i] AND r.placed_at = p_charged[i]));
                        IF FOUND AND h.account = accts[i] THEN
                            SELECT * INTO a FROM {s}.accounts WHERE id = h.account;
                            placed := {s}.month_of(h.placed_at);
                            new_id := NULL;
                            IF h.held THEN
                                UPDATE {s}.reservations SET held = false WHERE request_id = h.request_id AND held;
                                IF FOUND THEN
                                    INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                                    VALUES (a.id, 'Release', h.amount, a.balance + h.amount, h.tool, h.request_id, p_now[i], false)
                                    RETURNING id INTO new_id;
                                END IF;
                            ELSIF h.captured IS NOT NULL THEN
                                h.amount := h.captured;
                                INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                                VALUES (a.id, 'Refund', h.amount, a.balance + h.amount, h.tool, h.request_id, p_now[i], false)
                                ON CONFLICT (request_id) WHERE kind = 'Refund' DO NOTHING RETURNING id INTO new_id;
                            END IF;
                            IF new_id IS NOT NULL THEN
                                m := {s}.month_of(p_now[i]);
                                IF m > a.month THEN a.month := m; a.month_spent := 0; a.month_free := 0; END IF;
                                a.balance := a.balance + h.amount;
                                IF placed = a.month THEN a.month_spent := a.month_spent - h.amount; END IF;
                                UPDATE {s}.accounts SET balance = a.balance, month = a.month, month_spent = a.month_spent, month_free = a.month_free
                                WHERE id = a.id;
                                r_outcome := 1;
                            END IF;
                        END IF;
                    END IF;
                END IF;
                RETURN NEXT;
            END LOOP;
        END $$;

        -- Version 1's signature, kept for instances not upgraded yet: the same rules.
        CREATE FUNCTION {s}.apply_batch(
            p_kind smallint[], p_account text[], p_request text[], p_tool text[], p_price bigint[],
            p_free_calls integer[], p_now timestamptz[], p_new boolean[])
        RETURNS TABLE (r_outcome smallint, r_balance bigint, r_spent bigint, r_cap bigint)
        LANGUAGE sql AS $$
            SELECT r_outcome, r_balance, r_spent, r_cap FROM {s}.apply_batch(p_kind, p_account, p_request, p_tool, p_price, p_free_calls, p_now, p_new, p_now)
        $$;

        -- Releases the holds placed before p_before that still stand (those of calls whose instance died before settling
        -- them), each with a Release row, their accounts locked in one order as a batch locks them. Returns how many.
        CREATE FUNCTION {s}.release_reservations(p_before timestamptz, p_now timestamptz) RETURNS integer
        LANGUAGE plpgsql AS $$
        DECLARE
            accts text[];
            released integer := 0;
            m integer;
            a {s}.accounts%ROWTYPE;
            h {s}.reservations%ROWTYPE;
        BEGIN
            SELECT array_agg(DISTINCT r.account) INTO accts FROM {s}.reservations r WHERE r.held AND r.placed_at < p_before;
            IF accts IS NULL THEN
                RETURN 0;
            END IF;

            PERFORM {s}.lock_accounts(accts, array_fill(false, ARRAY[array_length(accts, 1)]), p_now);
            FOR h IN
                SELECT * FROM {s}.reservations r WHERE r.held AND r.placed_at < p_before AND r.account = ANY (accts)
                ORDER BY r.account, r.placed_at, r.request_id
            LOOP
                -- Settled meanwhile (before this call locked its account): left alone.
                UPDATE {s}.reservations SET held = false WHERE request_id = h.request_id AND held;
                CONTINUE WHEN NOT FOUND;
                SELECT * INTO a FROM {s}.accounts WHERE id = h.account;
                m := {s}.month_of(p_now);
                IF m > a.month THEN a.month := m; a.month_spent := 0; a.month_free := 0; END IF;
                INSERT INTO {s}.ledger (account, kind, amount, balance_after, tool, request_id, created_at, free)
                VALUES (a.id, 'Release', h.amount, a.balance + h.amount, h.tool, h.request_id, p_now, false);
                a.balance := a.balance + h.amount;
                IF {s}.month_of(h.placed_at) = a.month THEN a.month_spent := a.month_spent - h.amount; END IF;
                UPDATE {s}.accounts SET balance = a.balance, month = a.month, month_spent = a.month_spent, month_free = a.month_free
                WHERE id = a.id;
                released := released + 1;
            END LOOP;
            RETURN released;
        END $$;
        """,
        """
        -- Version 4: an API key's spend ceiling per call (null: none).
        ALTER TABLE {s}.api_keys ADD COLUMN max_price bigint CHECK (max_price >= 0);
        """,
    ];

    /// <summary>
    /// The index the admin API's usage figures read the window's rows through (they add up a day at most, grouped by the
    /// time the rows were written). Not a migration: on a large ledger a plain build would hold writes for as long as it
    /// takes, inside the migration's time limit. It is built CONCURRENTLY after the migrations, in the background, by
    /// one instance at a time (<see cref="AdvisoryLockClass"/> + 1); an invalid one, left by a failed build, is dropped and
    /// built again. BRIN: the rows arrive in time order, so it is a few pages and costs writes nearly nothing.
    /// </summary>
    public const string CreatedAtIndex = "ledger_created_at";
}
