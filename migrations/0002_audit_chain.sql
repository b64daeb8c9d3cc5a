-- 0002: the audit log becomes tamper-evident (docs/audit.md).
--
-- Events are spread over 64 hash chains. Appending takes the head of a chain
-- that no other transaction holds (FOR UPDATE SKIP LOCKED), so concurrent
-- transactions never queue behind one head; the head stays locked until the
-- transaction ends, which keeps chain_seq gap-free and the links in order.
-- A transaction that appends several events keeps using the chain it took.
-- masad computes the hashes (service/audit/); audit_hash() below computes the
-- same in SQL, for this migration's own backfill and for auditors.

CREATE TABLE audit_heads (
    chain       integer PRIMARY KEY CHECK (chain >= 0),
    chain_seq   bigint NOT NULL DEFAULT 0,
    hash        bytea NOT NULL DEFAULT decode(repeat('00', 32), 'hex')
);
INSERT INTO audit_heads (chain) SELECT generate_series(0, 63);

-- Signed statements of every chain's head at a moment (docs/audit.md).
CREATE TABLE audit_checkpoints (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    heads       text NOT NULL,       -- the signed content: canonical JSON
    signature   bytea NOT NULL       -- CMS SignedData over heads, content included
);

-- The canonical encoding of one field: 4-byte big-endian length and the
-- UTF-8 bytes, or 0xFFFFFFFF for NULL.
CREATE FUNCTION audit_field(value text) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value IS NULL THEN '\xffffffff'::bytea
                ELSE int4send(octet_length(convert_to(value, 'UTF8'))) || convert_to(value, 'UTF8')
           END
$$;

CREATE FUNCTION audit_time(at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

-- SHA-256 over the event's fields and its predecessor's hash (docs/audit.md).
CREATE FUNCTION audit_hash(seq bigint, chain integer, chain_seq bigint, at timestamptz,
                           actor text, action text, serial_number text, owner_id text,
                           outcome text, detail text, prev_hash bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(convert_to(E'masad-audit-v1\n', 'UTF8')
        || audit_field(seq::text) || audit_field(chain::text) || audit_field(chain_seq::text)
        || audit_field(audit_time(at)) || audit_field(actor) || audit_field(action)
        || audit_field(serial_number) || audit_field(owner_id) || audit_field(outcome)
        || audit_field(detail) || prev_hash)
$$;

-- The chain head this transaction appends to, locked until it ends: the
-- one it holds already (held, known to the caller), else a free one.
CREATE FUNCTION audit_take_head(held integer) RETURNS audit_heads
LANGUAGE plpgsql AS $$
DECLARE
    head audit_heads;
    start integer := floor(random() * 64)::integer;
BEGIN
    IF held IS NOT NULL THEN
        SELECT * INTO head FROM audit_heads WHERE chain = held FOR UPDATE;
        RETURN head;
    END IF;
    -- a free head from a random place, wrapping round
    SELECT * INTO head FROM audit_heads WHERE chain >= start
        ORDER BY chain LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        SELECT * INTO head FROM audit_heads ORDER BY chain LIMIT 1 FOR UPDATE SKIP LOCKED;
    END IF;
    IF NOT FOUND THEN  -- every head is busy: wait for one
        SELECT * INTO head FROM audit_heads WHERE chain = start FOR UPDATE;
    END IF;
    RETURN head;
END
$$;

-- Events written before this migration join chain 0, in seq order.
ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete;
DO $$
DECLARE
    e record;
    h bytea := decode(repeat('00', 32), 'hex');
    cs bigint := 0;
BEGIN
    FOR e IN SELECT * FROM audit_events ORDER BY seq LOOP
        cs := cs + 1;
        UPDATE audit_events SET chain = 0, chain_seq = cs, prev_hash = h,
            hash = audit_hash(e.seq, 0, cs, e.at, e.actor, e.action, e.serial_number,
                              e.owner_id, e.outcome, e.detail, h)
        WHERE seq = e.seq RETURNING hash INTO h;
    END LOOP;
    UPDATE audit_heads SET chain_seq = cs, hash = h WHERE chain = 0;
END
$$;
ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update_delete;

ALTER TABLE audit_events
    ALTER COLUMN chain SET NOT NULL,
    ALTER COLUMN chain_seq SET NOT NULL,
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN hash SET NOT NULL,
    ADD CHECK (chain_seq >= 1),
    ADD CHECK (length(hash) = 32 AND length(prev_hash) = 32);

GRANT SELECT, UPDATE ON audit_heads TO masad_runtime;
GRANT SELECT, INSERT ON audit_checkpoints TO masad_runtime;
GRANT USAGE ON SEQUENCE audit_checkpoints_id_seq TO masad_runtime;
