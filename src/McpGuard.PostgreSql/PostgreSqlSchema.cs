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
