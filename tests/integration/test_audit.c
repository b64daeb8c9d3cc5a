/*
 * The audit log proves itself: hash chains that `masad audit verify` walks,
 * signed checkpoints, and every kind of tampering a superuser could do.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "harness.h"

static struct masad_proc proc;
static char *token;

static void start_with(const char *extra)
{
    struct masad_opts o = {.extra_config = extra};
    cr_assert(masad_start(&proc, &o), "%s", read_text(proc.stderr_path));
    token = make_token(&proc, "auditor", "devices:read,devices:write,owners:write,ownership:write,audit:read");
}

static void start(void) { start_with(NULL); }

static void stop(void) { masad_stop_expect_clean(&proc); }

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static long put(const char *path, const char *body)
{
    struct http_opts o = {.management = true, .method = "PUT", .body = body, .body_len = strlen(body),
                          .content_type = "application/json", .bearer = token};
    struct http_result r = http(&proc, path, &o);
    long status = r.status;
    http_result_free(&r);
    return status;
}

/* Devices, an owner and ownership changes: a few dozen events. */
static void make_events(int devices)
{
    cr_assert_eq(put("/api/v1/owners/acme", "{\"display_name\": \"Acme\"}"), 201);
    cr_assert_eq(put("/api/v1/owners/zenith", "{\"display_name\": \"Zenith\"}"), 201);
    for (int i = 0; i < devices; i++) {
        char path[128];
        snprintf(path, sizeof(path), "/api/v1/devices/AUD-%03d", i);
        cr_assert_eq(put(path, "{\"product\": \"p\"}"), 201);
        snprintf(path, sizeof(path), "/api/v1/devices/AUD-%03d/ownership", i);
        cr_assert_eq(put(path, i % 2 ? "{\"owner_id\": \"acme\"}" : "{\"owner_id\": \"zenith\"}"), 201);
    }
}

/* Five events in one transaction (a device batch): they share a chain,
 * which is returned. */
static char *chain_of_five(void)
{
    const char *body = "{\"devices\": [{\"serial_number\": \"F1\", \"product\": \"p\"},"
                       " {\"serial_number\": \"F2\", \"product\": \"p\"}, {\"serial_number\": \"F3\", \"product\": \"p\"},"
                       " {\"serial_number\": \"F4\", \"product\": \"p\"}, {\"serial_number\": \"F5\", \"product\": \"p\"}]}";
    struct http_opts o = {.management = true, .body = body, .body_len = strlen(body),
                          .content_type = "application/json", .bearer = token};
    struct http_result r = http(&proc, "/api/v1/devices:batch", &o);
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_result_free(&r);
    char *chain = db_value(proc.db.owner_url, "SELECT chain FROM audit_events WHERE serial_number = 'F1'");
    cr_assert(chain);
    cr_assert_str_eq(db_value(proc.db.owner_url, "SELECT count(DISTINCT chain) FROM audit_events WHERE serial_number LIKE 'F_'"), "1");
    return chain;
}

static int verify(char **out, const char *checkpoints)
{
    char *ca = pki_path("root-ca.crt");
    const char *env[] = {"MASAD_DATABASE_URL", proc.db.app_url, NULL};
    const char *with_file[] = {"audit", "verify", "--ca", ca, "--checkpoints", checkpoints, NULL};
    const char *plain[] = {"audit", "verify", "--ca", ca, NULL};
    return masad_run(out, env, checkpoints ? with_file : plain);
}

/* As superuser, with the append-only trigger switched off for the session. */
static void tamper(const char *sql)
{
    char *admin = db_url_for(env_or_die("MASAD_ADMIN_DATABASE_URL"), proc.db.name), *full, *err = NULL;
    cr_assert(asprintf(&full, "SET session_replication_role = replica; %s", sql) > 0);
    cr_assert_eq(db_exec(admin, full, &err), 0, "%s: %s", sql, err);
}

static char *value(const char *fmt, const char *arg)
{
    char *sql;
    cr_assert(asprintf(&sql, fmt, arg) > 0);
    char *v = db_value(proc.db.owner_url, sql);
    cr_assert(v, "no value: %s", sql);
    return v;
}

Test(audit, events_are_chained_and_verify, .init = start, .fini = stop, .timeout = 120)
{
    make_events(6);
    char *out;
    cr_assert_eq(verify(&out, NULL), 0, "%s", out);
    cr_assert(strstr(out, "audit log intact: "), "%s", out);
    cr_assert(strstr(out, " events in 64 chains"), "%s", out);
    /* every event has its place and its hash, and the API shows them */
    cr_assert_str_eq(value("SELECT count(*) FROM audit_events WHERE hash IS NULL OR chain IS NULL%s", ""), "0");
    struct http_opts o = {.management = true, .bearer = token};
    struct http_result r = http(&proc, "/api/v1/audit?limit=1", &o);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert(strstr(r.body, "\"chain_seq\":1,"), "%s", r.body);
    cr_assert(strstr(r.body, "\"prev_hash\":\"0000000000000000000000000000000000000000000000000000000000000000\""), "%s", r.body);
    http_result_free(&r);
}

Test(audit, an_edited_event_is_named, .init = start, .fini = stop, .timeout = 120)
{
    make_events(4);
    const char *seq = value("SELECT seq FROM audit_events WHERE action = 'ownership.assign' ORDER BY seq LIMIT 1%s", "");
    char *sql, *out;
    cr_assert(asprintf(&sql, "UPDATE audit_events SET owner_id = 'mallory' WHERE seq = %s", seq) > 0);
    tamper(sql);
    cr_assert_eq(verify(&out, NULL), 1, "%s", out);
    char *want;
    cr_assert(asprintf(&want, ": seq %s (chain_seq ", seq) > 0);
    cr_assert(strstr(out, want), "%s", out);
    cr_assert(strstr(out, "its hash does not match its fields (the event was edited)"), "%s", out);
}

Test(audit, a_deleted_event_leaves_a_named_gap, .init = start, .fini = stop, .timeout = 120)
{
    make_events(4);
    /* a chain with at least three events; delete its second */
    const char *chain = chain_of_five();
    const char *next_seq = value("SELECT seq FROM audit_events WHERE chain = %s AND chain_seq = 3", chain);
    char *sql, *out, *want;
    cr_assert(asprintf(&sql, "DELETE FROM audit_events WHERE chain = %s AND chain_seq = 2", chain) > 0);
    tamper(sql);
    cr_assert_eq(verify(&out, NULL), 1, "%s", out);
    cr_assert(asprintf(&want, "FAULT: chain %s: chain_seq 2 to 2 missing before seq %s (events were deleted)",
                       chain, next_seq) > 0);
    cr_assert(strstr(out, want), "want %s in %s", want, out);
}

Test(audit, the_last_event_of_a_chain_deleted_is_noticed, .init = start, .fini = stop, .timeout = 120)
{
    make_events(2);
    const char *chain = value("SELECT chain FROM audit_heads WHERE chain_seq > 0 ORDER BY chain LIMIT 1%s", "");
    char *sql, *out;
    cr_assert(asprintf(&sql, "DELETE FROM audit_events WHERE chain = %s AND chain_seq ="
                             " (SELECT chain_seq FROM audit_heads WHERE chain = %s)", chain, chain) > 0);
    tamper(sql);
    cr_assert_eq(verify(&out, NULL), 1, "%s", out);
    cr_assert(strstr(out, "events were removed from its end"), "%s", out);
}

Test(audit, reordered_and_inserted_events_are_noticed, .init = start, .fini = stop, .timeout = 120)
{
    make_events(4);
    const char *chain = chain_of_five();
    char *sql, *out;
    /* swap the places of chain_seq 2 and 3 */
    cr_assert(asprintf(&sql, "UPDATE audit_events SET chain_seq = 1000 + chain_seq WHERE chain = %s AND chain_seq IN (2, 3);"
                             "UPDATE audit_events SET chain_seq = 1005 - chain_seq WHERE chain = %s AND chain_seq > 1000",
                       chain, chain) > 0);
    tamper(sql);
    cr_assert_eq(verify(&out, NULL), 1, "%s", out);
    cr_assert(strstr(out, "does not link to the event before it (an event was inserted, moved or reordered)"), "%s", out);

}

Test(audit, an_event_outside_the_chains_is_noticed, .init = start, .fini = stop, .timeout = 120)
{
    make_events(1);
    char *out;
    tamper("INSERT INTO audit_events (seq, chain, chain_seq, actor, action, outcome, prev_hash, hash)"
           " VALUES (424242, 999, 1, 'mallory', 'ownership.assign', 'ok',"
           " decode(repeat('00', 32), 'hex'), decode(repeat('00', 32), 'hex'))");
    cr_assert_eq(verify(&out, NULL), 1, "%s", out);
    cr_assert(strstr(out, "FAULT: seq 424242 belongs to no chain (it was inserted)"), "%s", out);
}

Test(audit, checkpoints_are_signed_listed_and_verified, .timeout = 120)
{
    start_with("\"masad-config:audit\": {\"checkpoint-events\": 5, \"checkpoint-seconds\": 3600}");
    make_events(4);
    /* a job thread notices within a second or two */
    struct http_opts o = {.management = true, .bearer = token};
    struct http_result r = {0};
    for (int i = 0; i < 60; i++, sleep_ms(100)) {
        r = http(&proc, "/api/v1/audit/checkpoints", &o);
        if (r.status == 200 && strstr(r.body, "\"id\":1,"))
            break;
    }
    cr_assert(strstr(r.body, "{\"checkpoints\":[{\"id\":1,\"at\":\""), "%s", r.body);
    cr_assert(strstr(r.body, "\"heads\":[{\"chain\":0,\"chain_seq\":"), "%s", r.body);
    /* the signature is CMS over the stored heads text, checked by openssl too */
    char *sig = value("SELECT translate(encode(signature, 'base64'), E'\\n', '') FROM audit_checkpoints WHERE id = 1%s", "");
    char *heads = value("SELECT heads FROM audit_checkpoints WHERE id = 1%s", "");
    char *b64 = write_temp("cp.b64", sig, strlen(sig)), *out;
    cr_assert_eq(sh(&out, "base64 -d %s | openssl cms -verify -inform DER -binary -CAfile %s -purpose any"
                          " 2>/dev/null", b64, pki_path("root-ca.crt")), 0, "%s", out);
    cr_assert(strstr(out, heads), "openssl printed %zu bytes, heads are %zu: %s", strlen(out), strlen(heads), out + strlen(out) - 80);
    stop();
    cr_assert_eq(verify(&out, NULL), 0, "%s", out);
    cr_assert(strstr(out, "stored checkpoints verified"), "%s", out);
    cr_assert_null(strstr(out, " 0 stored checkpoints"), "%s", out);

    /* a forged checkpoint: not signed by the service's key */
    tamper("UPDATE audit_checkpoints SET heads = replace(heads, '\"chain\":0,', '\"chain\":0, ') WHERE id = 1");
    cr_assert_eq(verify(&out, NULL), 1, "%s", out);
    cr_assert(strstr(out, "FAULT: checkpoint 1: the stored heads differ from what was signed"), "%s", out);
}

/* Rewriting a chain wholesale after a checkpoint (every hash recomputed, the
 * stored checkpoints deleted) passes a walk of the chains alone; the
 * exported checkpoints catch it. */
Test(audit, an_exported_checkpoint_catches_a_rewritten_chain, .timeout = 120)
{
    start_with("\"masad-config:audit\": {\"checkpoint-events\": 3, \"checkpoint-seconds\": 3600}");
    make_events(3);
    for (int i = 0; i < 60 && !db_value(proc.db.owner_url, "SELECT 1 FROM audit_checkpoints"); i++)
        sleep_ms(100);
    stop();
    char *exported, *out;
    const char *env[] = {"MASAD_DATABASE_URL", proc.db.app_url, NULL};
    const char *args[] = {"audit", "export-checkpoints", NULL};
    cr_assert_eq(masad_run(&exported, env, args), 0, "%s", exported);
    cr_assert(strstr(exported, "\"signature\":\""), "%s", exported);
    char *file = write_temp("checkpoints.jsonl", exported, strlen(exported));

    const char *chain = value("SELECT chain FROM audit_events WHERE chain_seq = 1 ORDER BY seq LIMIT 1%s", "");
    char *sql;
    cr_assert(asprintf(&sql,
        "UPDATE audit_events SET actor = 'mallory' WHERE chain = %s AND chain_seq = 1;"
        "DO $$ DECLARE e record; h bytea := decode(repeat('00', 32), 'hex'); BEGIN"
        "  FOR e IN SELECT * FROM audit_events WHERE chain = %s ORDER BY chain_seq LOOP"
        "    UPDATE audit_events SET prev_hash = h, hash = audit_hash(e.seq, e.chain, e.chain_seq, e.at,"
        "      e.actor, e.action, e.serial_number, e.owner_id, e.outcome, e.detail, h)"
        "      WHERE seq = e.seq RETURNING hash INTO h;"
        "  END LOOP;"
        "  UPDATE audit_heads SET hash = h WHERE chain = %s; END $$;"
        "DELETE FROM audit_checkpoints", chain, chain, chain) > 0);
    tamper(sql);
    cr_assert_eq(verify(&out, NULL), 0, "the rewrite should be self-consistent: %s", out);
    cr_assert_eq(verify(&out, file), 1, "%s", out);
    char *want;
    cr_assert(asprintf(&want, "(exported): chain %s at chain_seq ", chain) > 0);
    cr_assert(strstr(out, want), "%s", out);
    cr_assert(strstr(out, "differs from what was signed (the chain was rewritten after the checkpoint)"), "%s", out);
}

struct writer {
    int id;
    int failures;
};

/* Through the service: device PUTs, each with its own transaction and event. */
static void *write_devices(void *arg)
{
    struct writer *w = arg;
    for (int i = 0; i < 20; i++) {
        char path[64];
        snprintf(path, sizeof(path), "/api/v1/devices/W-%d-%d", w->id, i);
        if (put(path, "{\"product\": \"p\"}") != 201)
            w->failures++;
    }
    return NULL;
}

Test(audit, concurrent_writers_and_verify, .init = start, .fini = stop, .timeout = 120)
{
    enum { WRITERS = 12 };
    pthread_t threads[WRITERS];
    struct writer writers[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        writers[i] = (struct writer){i, 0};
        pthread_create(&threads[i], NULL, write_devices, &writers[i]);
    }
    char *out;
    for (int i = 0; i < 3; i++) /* while they write: each run sees one consistent snapshot */
        cr_assert_eq(verify(&out, NULL), 0, "%s", out);
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(threads[i], NULL);
        cr_assert_eq(writers[i].failures, 0);
    }
    cr_assert_eq(verify(&out, NULL), 0, "%s", out);
    cr_assert(strstr(out, "audit log intact: "), "%s", out);
    cr_assert_str_eq(value("SELECT count(*) FROM audit_events WHERE action = 'device.create'%s", ""), "240");
    cr_assert_str_eq(value("SELECT count(DISTINCT chain) > 1 FROM audit_events WHERE action = 'device.create'%s", ""), "t");
}

Test(audit, events_from_before_the_chain_are_chained_by_the_migration, .timeout = 120)
{
    struct test_db db;
    db_create(&db);
    char *first = tmp_path("mig-%s", db.name), *out;
    cr_assert_eq(sh(NULL, "mkdir -p %s && cp %s/migrations/0001_init.sql %s/", first,
                    env_or_die("MASAD_TEST_ROOT"), first), 0);
    const char *env[] = {"MASAD_MIGRATE_DATABASE_URL", db.owner_url, NULL};
    const char *only_first[] = {"migrate", "--dir", first, NULL};
    cr_assert_eq(masad_run(&out, env, only_first), 0, "%s", out);
    cr_assert_eq(db_exec(db.owner_url,
                         "INSERT INTO audit_events (actor, action, outcome, detail) VALUES"
                         " ('old', 'device.create', 'ok', NULL), ('old', 'owner.create', 'ok', '{\"a\":1}')",
                         NULL), 0);
    const char *all[] = {"migrate", NULL};
    cr_assert_eq(masad_run(&out, env, all), 0, "%s", out);
    cr_assert(strstr(out, "applied 0002_audit_chain.sql"), "%s", out);
    cr_assert_str_eq(db_value(db.owner_url, "SELECT string_agg(chain || ':' || chain_seq, ',' ORDER BY seq) FROM audit_events"), "0:1,0:2");
    proc.db.app_url = db.app_url;
    char *ca = pki_path("root-ca.crt");
    const char *venv[] = {"MASAD_DATABASE_URL", db.app_url, NULL};
    const char *vargs[] = {"audit", "verify", "--ca", ca, NULL};
    cr_assert_eq(masad_run(&out, venv, vargs), 0, "%s", out);
    cr_assert(strstr(out, "audit log intact: 2 events in 64 chains"), "%s", out);
}

/* audit/chain.c's audit_event_hash (which `masad audit verify` uses) and the
 * database's audit_hash() (which audit_append() spells out) agree on the
 * same fields, NULLs and non-ASCII text included (docs/audit.md). */
Test(audit, the_c_hash_equals_sql_audit_hash, .init = start, .fini = stop, .timeout = 120)
{
    static const char *const cases[][10] = {
        {"17", "3", "42", "2026-11-23T14:05:09.123456Z", "token:caf\xc3\xa9", "device.create",
         "SN-\xe2\x82\xac", "acme", "ok", "{\"a\":[1,true,null],\"b\":\"\\\"\"}"},
        {"1", "0", "1", "1999-12-31T23:59:59.000000Z", "", "x", NULL, NULL, "refused", NULL},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        const char *const *f = cases[k];
        unsigned char prev[32], got[32];
        memset(prev, (int)(0x11 * (k + 1)), sizeof(prev));
        audit_event_hash(f, prev, got);
        char want[65], literal[10][200];
        for (int i = 0; i < 32; i++)
            snprintf(want + 2 * i, 3, "%02x", got[i]);
        for (int i = 0; i < 10; i++) /* SQL literals (no quote in these fields but detail's) */
            if (!f[i])
                snprintf(literal[i], sizeof(literal[i]), "NULL");
            else
                snprintf(literal[i], sizeof(literal[i]), "$q$%s$q$", f[i]);
        char *sql = fmt("SELECT encode(audit_hash(%s::bigint, %s::integer, %s::bigint, "
                        "%s::timestamptz, %s, %s, %s, %s, %s, %s, decode(repeat('%02x', 32), 'hex')),"
                        " 'hex')",
                        literal[0], literal[1], literal[2], literal[3], literal[4], literal[5],
                        literal[6], literal[7], literal[8], literal[9], prev[0]);
        char *sql_hash = db_value(proc.db.owner_url, sql);
        cr_assert_not_null(sql_hash, "%s", sql);
        cr_assert_str_eq(sql_hash, want, "case %zu", k);
    }
}

/* Each append moves a chain head in place: migration 0009 leaves room on
 * the heads' page, so the updates are HOT (no index entry, pruned without
 * VACUUM). Counted by the session that appends, its statistics flushed. */
Test(audit, head_updates_are_hot, .init = start, .fini = stop, .timeout = 120)
{
    cr_assert_str_eq(value("SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = "
                           "'audit_heads'::regclass%s", ""), "fillfactor=50");
    cr_assert_str_eq(value("SELECT array_to_string(reloptions, ',') FROM pg_class WHERE oid = "
                           "'api_tokens'::regclass%s", ""), "fillfactor=70");
    /* the flush happens before the DO statement's answer (the session goes idle) */
    char *sql = fmt("%s", "DO $$ BEGIN FOR i IN 1..200 LOOP"
                    " PERFORM audit_append(NULL, 'test', 'test.hot', ARRAY['HOT-1'], NULL, 'ok', NULL);"
                    " COMMIT; END LOOP; PERFORM pg_stat_force_next_flush(); END $$");
    char *before = value("SELECT pg_stat_get_tuples_hot_updated('audit_heads'::regclass)%s", "");
    char *err = NULL;
    cr_assert_eq(db_exec(proc.db.owner_url, sql, &err), 0, "%s", err);
    char *after = value("SELECT pg_stat_get_tuples_hot_updated('audit_heads'::regclass)%s", "");
    cr_assert_geq(atoll(after) - atoll(before), 200, "HOT updates %s then %s", before, after);
    char *out;
    cr_assert_eq(verify(&out, NULL), 0, "%s", out);
}
