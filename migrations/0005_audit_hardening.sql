-- 0005: appending to the audit log becomes one statement (docs/audit.md).
--
-- Before, masad took a chain head in one statement and inserted the events
-- and moved the head in a second. Outside a transaction (a refusal, written
-- after the refused change was rolled back) the head's lock ended with the
-- first statement, so two writers could take the same chain_seq and one
-- event was lost. audit_append() takes the head, hashes and inserts the
-- events and moves the head in one call: in autocommit that call is its own
-- transaction, which holds the head from take to move; inside a transaction
-- the head stays locked until the transaction ends, as before.

-- Appends one event per element of serials (owners: the same length, or
-- NULL), with the same actor, action, outcome and detail, to the chain held
-- (or a free one); returns the chain. detail is stored and hashed as given:
-- masad writes it canonically.
CREATE FUNCTION audit_append(held integer, actor text, action text, serials text[],
                             owners text[], outcome text, detail text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    head audit_heads := audit_take_head(held);
    t timestamptz := now();
    h bytea := head.hash;
    cs bigint := head.chain_seq;
    s bigint;
    next bytea;
BEGIN
    FOR i IN 1 .. coalesce(array_length(serials, 1), 0) LOOP
        s := nextval('audit_events_seq_seq');
        cs := cs + 1;
        next := audit_hash(s, head.chain, cs, t, actor, action, serials[i], owners[i], outcome,
                           detail, h);
        INSERT INTO audit_events (seq, chain, chain_seq, at, actor, action, serial_number,
                                  owner_id, outcome, detail, prev_hash, hash)
        VALUES (s, head.chain, cs, t, actor, action, serials[i], owners[i], outcome, detail, h,
                next);
        h := next;
    END LOOP;
    UPDATE audit_heads SET chain_seq = cs, hash = h WHERE chain = head.chain;
    RETURN head.chain;
END
$$;
