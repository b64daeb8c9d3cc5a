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
-- masad writes it canonically. Each hash is audit_hash() of the event,
-- spelled out here so that the fields shared by the events are encoded
-- once (a call of audit_hash() from PL/pgSQL costs about a millisecond;
-- a batch holds up to 10,000 events), and the rows go in with one INSERT.
CREATE FUNCTION audit_append(held integer, actor text, action text, serials text[],
                             owners text[], outcome text, detail text) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    head audit_heads := audit_take_head(held);
    n integer := coalesce(array_length(serials, 1), 0);
    t timestamptz := now();
    -- the encoded fields that every event of the call shares
    f_chain bytea := audit_field(head.chain::text);
    f_at bytea := audit_field(audit_time(t));
    f_who bytea := audit_field(actor) || audit_field(action);
    f_end bytea := audit_field(outcome) || audit_field(detail);
    domain bytea := convert_to(E'masad-audit-v1\n', 'UTF8');
    seqs bigint[] := ARRAY(SELECT nextval('audit_events_seq_seq') FROM generate_series(1, n));
    places bigint[] := ARRAY(SELECT head.chain_seq + g FROM generate_series(1, n) g);
    prevs bytea[] := '{}';
    hashes bytea[] := '{}';
    h bytea := head.hash;
BEGIN
    FOR i IN 1 .. n LOOP
        prevs := prevs || h;
        h := sha256(domain || audit_field(seqs[i]::text) || f_chain
                    || audit_field(places[i]::text) || f_at || f_who
                    || audit_field(serials[i]) || audit_field(owners[i]) || f_end || h);
        hashes := hashes || h;
    END LOOP;
    INSERT INTO audit_events (seq, chain, chain_seq, at, actor, action, serial_number, owner_id,
                              outcome, detail, prev_hash, hash)
    SELECT e.seq, head.chain, e.place, t, actor, action, e.serial, e.owner, outcome, detail,
           e.prev, e.hash
      FROM unnest(seqs, places, serials, coalesce(owners, array_fill(NULL::text, ARRAY[n])),
                  prevs, hashes) AS e(seq, place, serial, owner, prev, hash);
    UPDATE audit_heads SET chain_seq = head.chain_seq + n, hash = h WHERE chain = head.chain;
    RETURN head.chain;
END
$$;
