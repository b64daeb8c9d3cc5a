/* The audit log: statements. */
#include "store/store_internal.h"

const struct store_statement store_audit_statements[] = {
    /* audit */
    /* appending (docs/audit.md): take the held or a free chain head, insert
     * the hashed events and move the head, in one statement
     * (migrations/0005_audit_hardening.sql) */
    {"audit_append",
     "SELECT audit_append($1::integer, $2, $3, $4::text[], $5::text[], $6, $7)", 7},
    /* benchmark builds only (meson -Dbench_unchained_audit=true): the same
     * events without head lock or hashes, to measure the chain's cost */
    {"audit_insert_unchained",
     "INSERT INTO audit_events (chain, chain_seq, at, actor, action, serial_number, owner_id,"
     " outcome, detail, prev_hash, hash) SELECT 1000000, nextval('audit_events_seq_seq'), now(),"
     " $1, $2, s, o, $3, $4, decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex')"
     " FROM unnest($5::text[], $6::text[]) AS t(s, o)", 6},
    {"audit_heads", "SELECT chain, chain_seq, encode(hash, 'hex') FROM audit_heads ORDER BY chain", 0},
    /* one page of a chain, in order (verification walks each chain by pages
     * inside one snapshot, in constant memory) */
    {"audit_chain_page",
     "SELECT seq, chain, chain_seq, audit_time(at), actor, action, serial_number, owner_id,"
     " outcome, detail, encode(prev_hash, 'hex'), encode(hash, 'hex') FROM audit_events"
     " WHERE chain = $1 AND chain_seq > $2 ORDER BY chain_seq LIMIT 1000", 2},
    {"audit_unchained",
     "SELECT seq FROM audit_events WHERE chain NOT IN (SELECT chain FROM audit_heads)"
     " ORDER BY seq LIMIT 1", 0},
    {"audit_checkpoint_page",
     "SELECT id, " TS("at") ", heads, translate(encode(signature, 'base64'), E'\\n', '')"
     " FROM audit_checkpoints WHERE id > $1 ORDER BY id LIMIT $2", 2},
    /* the newest stored checkpoint and its age in seconds (audit verify) */
    {"audit_checkpoint_newest",
     "SELECT id, " TS("at") ", extract(epoch FROM now() - at)::bigint FROM audit_checkpoints"
     " ORDER BY id DESC LIMIT 1", 0},
    /* the heads a chain's checkpoints recorded, in checkpoint order */
    {"audit_checkpoint_heads",
     "SELECT c.id, (e->>'chain_seq')::bigint, e->>'hash' FROM audit_checkpoints c,"
     " json_array_elements(c.heads::json->'heads') e WHERE (e->>'chain')::integer = $1"
     " AND c.id > $2 ORDER BY c.id LIMIT 500", 2},
    /* is a checkpoint due? seconds since the last one, events since then */
    {"audit_checkpoint_due",
     "SELECT pg_try_advisory_xact_lock(469853219173), " TS("now()") ","
     " (SELECT extract(epoch FROM now() - at)::bigint FROM audit_checkpoints ORDER BY id DESC LIMIT 1),"
     " (SELECT sum(chain_seq) FROM audit_heads) - coalesce((SELECT sum((e->>'chain_seq')::bigint)"
     "   FROM (SELECT heads FROM audit_checkpoints ORDER BY id DESC LIMIT 1) c,"
     "   json_array_elements(c.heads::json->'heads') e), 0)", 0},
    {"audit_checkpoint_add",
     "INSERT INTO audit_checkpoints (at, heads, signature) VALUES ($1, $2, decode($3, 'hex'))", 3},
    {"audit_list",
     "SELECT seq, chain, chain_seq, " TS("at") ", actor, action, serial_number, owner_id, outcome,"
     " detail, encode(prev_hash, 'hex'), encode(hash, 'hex') FROM audit_events"
     " WHERE seq > $1 AND ($2::text IS NULL OR serial_number = $2)"
     " AND ($3::text IS NULL OR owner_id = $3) AND ($4::text IS NULL OR action = $4)"
     " AND ($5::timestamptz IS NULL OR at >= $5) AND ($6::timestamptz IS NULL OR at < $6)"
     " ORDER BY seq LIMIT $7", 7},
    {NULL, NULL, 0},
};
