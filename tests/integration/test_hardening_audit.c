/*
 * Defects found by outside testing (issue 10), each with the input that
 * found it: conveyed information that hung libyang, a job that never ends,
 * refusals lost under concurrency, unbounded audit rows from
 * unauthenticated clients, triggers the schema owner could switch off, and
 * what `masad audit verify` must say about checkpoints.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"
#include "harness.h"
#include "store/store.h"

static struct masad_proc proc;
static char *token;

static void start_with(const struct masad_opts *o)
{
    cr_assert(masad_start(&proc, o), "%s", read_text(proc.stderr_path));
    token = make_token(&proc, "hardening", "devices:write,owners:write,owners:read,audit:read");
}

static void start(void) { start_with(NULL); }

static void stop(void) { masad_stop_expect_clean(&proc); }

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static struct http_result put(const char *path, const char *body)
{
    struct http_opts o = {.management = true, .method = "PUT", .body = body, .body_len = strlen(body),
                          .content_type = "application/json", .bearer = token};
    return http(&proc, path, &o);
}

static int verify(char **out, const char *app_url, const char *checkpoints)
{
    char *ca = pki_path("root-ca.crt");
    const char *env[] = {"MASAD_DATABASE_URL", app_url, NULL};
    const char *with_file[] = {"audit", "verify", "--ca", ca, "--checkpoints", checkpoints, NULL};
    const char *plain[] = {"audit", "verify", "--ca", ca, NULL};
    return masad_run(out, env, checkpoints ? with_file : plain);
}

/* ---- 1: conveyed information that libyang 2.1.30 never finishes parsing ---- */

Test(hardening, conveyed_information_with_both_cases_is_refused_not_parsed, .init = start,
     .fini = stop, .timeout = 60)
{
    const char *body =
        "{\"sztp\": {\"conveyed_information\": {"
        "\"ietf-sztp-conveyed-info:redirect-information\": {\"bootstrap-server\": [{\"address\": \"sztp.example.com\"}]},"
        "\"ietf-sztp-conveyed-info:onboarding-information\": {\"boot-image\": {\"os-name\": \"x\"}}}}}";
    /* more than the job threads: before the fix each one took a thread for good */
    for (int i = 0; i < 4; i++) {
        struct http_result r = put("/api/v1/owners/both-cases", body);
        cr_assert_eq(r.status, 422, "%s", r.body);
        char *type = http_header(&r, "content-type");
        cr_assert_str_eq(type, "application/problem+json");
        cr_assert(strstr(r.body, "\"errors\":[{\"pointer\":\"/sztp/conveyed_information\","
                                 "\"detail\":\"both redirect-information and onboarding-information "
                                 "are given, but they are cases of the choice information-type, "
                                 "which holds one case (RFC 8572 §6.1, ietf-sztp-conveyed-info)\"}]"),
                  "%s", r.body);
        http_result_free(&r);
    }
    cr_assert(masad_wait_ready(&proc, 5000), "the job threads are stuck");
    cr_assert_str_eq(owner_value(&proc, "SELECT count(*) FROM owners"), "0");
    cr_assert_str_eq(owner_value(&proc, "SELECT count(*) FROM audit_events WHERE action = 'owner.put'"
                                        " AND outcome = 'refused'"), "4");
}

/* ---- 1: a job past service/job-time-limit fails liveness ---- */

struct sleeper {
    struct http_result r;
};

static void *sleep_request(void *arg)
{
    struct sleeper *s = arg;
    static const struct http_opts management = {.management = true};
    s->r = http(&proc, "/_test/sleep?ms=8000", &management);
    return NULL;
}

static struct http_result healthz(void)
{
    static const struct http_opts management = {.management = true};
    return http(&proc, "/healthz", &management);
}

Test(hardening, a_job_past_the_time_limit_fails_healthz_and_is_logged, .timeout = 90)
{
    struct masad_opts o = {.job_time_limit = 1};
    start_with(&o);
    struct http_result r = healthz();
    cr_assert_eq(r.status, 200, "%s", r.body);
    http_result_free(&r);
    struct sleeper s;
    pthread_t t;
    pthread_create(&t, NULL, sleep_request, &s);
    /* the job runs 8 s against a limit of 1 s: /healthz fails meanwhile */
    bool failed = false;
    for (int i = 0; i < 70 && !failed; i++) {
        r = healthz();
        failed = r.status == 503;
        if (failed)
            cr_assert(strstr(r.body, "not alive: job thread ") &&
                          strstr(r.body, "has run GET /_test/sleep (request ") &&
                          strstr(r.body, "longer than service/job-time-limit (1 s)"),
                      "%s", r.body);
        http_result_free(&r);
        if (!failed)
            sleep_ms(100);
    }
    pthread_join(t, NULL);
    cr_assert(failed, "/healthz never failed while a job overran its limit");
    cr_assert_eq(s.r.status, 200, "%s", s.r.body);
    char *id = http_header(&s.r, "x-request-id");
    cr_assert(id);
    char *log = read_text(proc.stderr_path);
    cr_assert(strstr(log, "watchdog: job thread "), "%s", log);
    cr_assert(strstr(log, fmt("has run GET /_test/sleep (request %s)", id)), "%s", log);
    r = healthz();
    cr_assert_eq(r.status, 200, "the job ended: alive again (%s)", r.body);
    http_result_free(&r);
    stop();
}

/* ---- 2: concurrent refusals, every one recorded ---- */

struct refuser {
    int id;
    int wrong;
};

static void *refuse_many(void *arg)
{
    struct refuser *w = arg;
    for (int i = 0; i < 150; i++) {
        char *path = fmt("/api/v1/devices/HC-%d-%d", w->id, i);
        struct http_result r = put(path, "{\"product\": 5}");
        if (r.status != 422)
            w->wrong++;
        http_result_free(&r);
        free(path);
    }
    return NULL;
}

Test(hardening, every_concurrent_refusal_is_recorded_and_the_log_verifies, .timeout = 600)
{
    struct masad_opts o = {.job_threads = 8};
    start_with(&o);
    enum { CLIENTS = 8 };
    pthread_t threads[CLIENTS];
    struct refuser w[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        w[i] = (struct refuser){i, 0};
        pthread_create(&threads[i], NULL, refuse_many, &w[i]);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(threads[i], NULL);
        cr_assert_eq(w[i].wrong, 0, "client %d: not every answer was 422", i);
    }
    cr_assert_str_eq(owner_value(&proc, "SELECT count(*) FROM audit_events WHERE action = 'device.put'"
                                        " AND outcome = 'refused' AND actor = 'hardening'"), "1200");
    cr_assert_str_eq(owner_value(&proc, "SELECT count(*) FROM devices"), "0");
    char *out;
    cr_assert_eq(verify(&out, proc.db.app_url, NULL), 0, "%s", out);
    cr_assert(strstr(out, "audit log intact: "), "%s", out);
    stop();
}

/* ---- 11: bounded rows ---- */

Test(hardening, a_long_actor_and_detail_are_stored_truncated, .timeout = 60)
{
    struct masad_proc p = {0};
    db_create(&p.db);
    char *out;
    const char *env[] = {"MASAD_MIGRATE_DATABASE_URL", p.db.owner_url, NULL};
    const char *args[] = {"migrate", NULL};
    cr_assert_eq(masad_run(&out, env, args), 0, "%s", out);
    /* a crafted registrar subject: 32,009 bytes, two-byte characters across the cut */
    size_t n = 32009;
    char *actor = malloc(n + 1);
    memcpy(actor, "registrar:", 10);
    for (size_t i = 10; i + 1 < n; i += 2)
        memcpy(actor + i, "\xc3\xa9", 2); /* é */
    actor[n - 1] = 'x';
    actor[n] = 0;
    char *reason = malloc(10001);
    memset(reason, 'r', 10000);
    reason[10000] = 0;
    char *detail = fmt("{\"reason\":\"%s\",\"status\":403}", reason);

    struct store_options so = {p.db.app_url, 2, 10000};
    struct store_conn *db;
    struct masad_error err;
    cr_assert_eq(store_connect(&so, &db, &err), 0, "%s", err.message);
    struct arena *a = arena_new();
    struct audit_event e = {actor, "voucher.refuse", NULL, NULL, "refused", detail};
    cr_assert_eq(audit_append(db, a, &e, &err), 0, "%s", err.message);
    arena_free(a);
    store_close(db);

    const char *url = p.db.owner_url;
    cr_assert_str_eq(db_value(url, "SELECT octet_length(actor) <= 256 FROM audit_events"), "t");
    cr_assert_str_eq(db_value(url, "SELECT actor LIKE 'registrar:éé%…' FROM audit_events"), "t");
    cr_assert_str_eq(db_value(url, "SELECT octet_length(detail) <= 4096 FROM audit_events"), "t");
    cr_assert_str_eq(db_value(url, "SELECT (detail::json->>'truncated') LIKE '{\"reason\":\"rrr%' FROM audit_events"), "t");
    cr_assert_str_eq(db_value(url, "SELECT (detail::json->>'truncated') LIKE '%rrr…' FROM audit_events"), "t");
    cr_assert_eq(verify(&out, p.db.app_url, NULL), 0, "%s", out);
}

static const char *const bootstrap_path =
    "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data";

Test(hardening, unauthenticated_refusals_are_counted_not_written_one_by_one, .timeout = 300)
{
    start_with(NULL);
    enum { N = 100 };
    const char *body = "{\"ietf-sztp-bootstrap-server:input\": {}}";
    for (int i = 0; i < N; i++) {
        struct http_opts o = {.method = "POST", .body = body, .body_len = strlen(body),
                              .content_type = "application/yang-data+json"};
        struct http_result r = http(&proc, bootstrap_path, &o);
        cr_assert_eq(r.status, 401, "%s", r.body);
        http_result_free(&r);
    }
    stop(); /* what was only counted is written at shutdown */
    char *rows = owner_value(&proc, "SELECT count(*) FROM audit_events WHERE action LIKE 'sztp.refuse%%'");
    /* per window: AUDIT_SUMMARY_FIRST (32) events and a summary; the burst may cross two */
    cr_assert_leq(atoi(rows), 2 * (32 + 1), "%s rows for %d refusals", rows, N);
    cr_assert_str_eq(owner_value(&proc,
        "SELECT count(*) FILTER (WHERE action = 'sztp.refuse')"
        " + coalesce(sum((detail::json->>'count')::bigint) FILTER (WHERE action = 'sztp.refuse.summary'), 0)"
        " FROM audit_events WHERE actor = 'device:unauthenticated'"), "100");
    cr_assert_str_eq(owner_value(&proc,
        "SELECT detail::json->>'source' FROM audit_events WHERE action = 'sztp.refuse.summary' LIMIT 1"),
        "127.0.0.1");
    char *out;
    cr_assert_eq(verify(&out, proc.db.app_url, NULL), 0, "%s", out);
}

/* ---- 20: who can switch the append-only triggers off ---- */

static void refused(const char *url, const char *sql, const char *reason)
{
    char *err = NULL;
    cr_assert_eq(db_exec(url, sql, &err), -1, "%s succeeded", sql);
    cr_assert(strstr(err, reason), "%s: %s", sql, err);
}

Test(hardening, the_schema_owner_cannot_switch_off_or_drop_the_append_only_triggers, .timeout = 60)
{
    struct test_db db;
    db_create(&db);
    char *superuser = db_url_for(env_or_die("MASAD_ADMIN_DATABASE_URL"), db.name), *err = NULL;
    char *guard = read_text(fmt("%s/audit-guard.sql", env_or_die("MASAD_TEST_DEV")));
    cr_assert(strstr(guard, "CREATE EVENT TRIGGER"));
    cr_assert_eq(db_exec(superuser, guard, &err), 0, "%s", err);
    /* installed before the migrations, which still run (0002 switches a trigger on an empty log) */
    char *out;
    const char *env[] = {"MASAD_MIGRATE_DATABASE_URL", db.owner_url, NULL};
    const char *args[] = {"migrate", NULL};
    cr_assert_eq(masad_run(&out, env, args), 0, "%s", out);
    cr_assert_eq(db_exec(db.app_url, "SELECT audit_append(NULL, 'test', 'test.event', ARRAY[NULL]::text[],"
                                     " NULL, 'ok', NULL)", &err), 0, "%s", err);

    const char *owner = db.owner_url, *why = "audit_events is append-only";
    refused(owner, "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete", why);
    refused(owner, "ALTER TABLE audit_events DISABLE TRIGGER ALL", why);
    refused(owner, "ALTER TABLE audit_events ENABLE REPLICA TRIGGER audit_events_no_truncate", why);
    refused(owner, "ALTER TABLE audit_events RENAME TO old_events", why);
    refused(owner, "ALTER TRIGGER audit_events_no_truncate ON audit_events RENAME TO t", why);
    refused(owner, "DROP TRIGGER audit_events_no_update_delete ON audit_events", why);
    refused(owner, "DROP TABLE audit_events", why);
    refused(owner, "DROP FUNCTION audit_events_append_only() CASCADE", why);
    refused(owner, "CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger"
                   " LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$", why);
    refused(owner, "CREATE TRIGGER quiet BEFORE INSERT ON audit_events FOR EACH ROW"
                   " EXECUTE FUNCTION audit_events_append_only()", why);
    /* and the guard itself is out of its reach */
    refused(owner, "DROP FUNCTION masad_guard.audit_guard() CASCADE", "permission denied for schema masad_guard");
    refused(owner, "DROP SCHEMA masad_guard CASCADE", "must be owner of schema masad_guard");
    refused(owner, "ALTER EVENT TRIGGER masad_audit_guard DISABLE", "must be owner of event trigger");
    refused(owner, "SET session_replication_role = replica", "permission denied");
    /* the runtime role owns nothing */
    refused(db.app_url, "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_delete",
            "must be owner of table audit_events");
    /* both triggers are still there and enabled; DELETE is still refused */
    cr_assert_str_eq(db_value(owner, "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass"
                                     " AND NOT tgisinternal AND tgenabled = 'O'"), "2");
    refused(owner, "DELETE FROM audit_events", "append-only: DELETE refused");
    /* other tables stay the owner's to change */
    cr_assert_eq(db_exec(owner, "ALTER TABLE devices ADD COLUMN x integer", &err), 0, "%s", err);
}

/* ---- 20: what verify says about checkpoints ---- */

static void start_checkpointing(void)
{
    struct masad_opts o = {.extra_config = "\"masad-config:audit\": {\"checkpoint-events\": 3,"
                                           " \"checkpoint-seconds\": 3600}"};
    start_with(&o);
    for (int i = 0; i < 4; i++) {
        struct http_result r = put(fmt("/api/v1/devices/CP-%d", i), "{\"product\": \"p\"}");
        cr_assert_eq(r.status, 201, "%s", r.body);
        http_result_free(&r);
    }
    for (int i = 0; i < 100 && !db_value(proc.db.owner_url, "SELECT 1 FROM audit_checkpoints"); i++)
        sleep_ms(100);
    stop();
}

Test(hardening, verify_reports_the_newest_checkpoint_and_its_age, .timeout = 120)
{
    struct test_db empty;
    db_create(&empty);
    char *out;
    const char *env[] = {"MASAD_MIGRATE_DATABASE_URL", empty.owner_url, NULL};
    const char *args[] = {"migrate", NULL};
    cr_assert_eq(masad_run(&out, env, args), 0, "%s", out);
    cr_assert_eq(verify(&out, empty.app_url, NULL), 0, "%s", out);
    cr_assert(strstr(out, "no stored checkpoint yet\n"), "%s", out);

    start_checkpointing();
    cr_assert_eq(verify(&out, proc.db.app_url, NULL), 0, "%s", out);
    char *at = owner_value(&proc, "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                                  " FROM audit_checkpoints ORDER BY id DESC LIMIT 1");
    char *id = owner_value(&proc, "SELECT max(id) FROM audit_checkpoints");
    cr_assert(strstr(out, fmt("newest stored checkpoint: %s, signed at %s, ", id, at)), "%s", out);
    cr_assert(strstr(out, " seconds ago\n"), "%s", out);
}

Test(hardening, verify_refuses_an_emptied_log_that_an_export_saw_with_events, .timeout = 120)
{
    start_checkpointing();
    char *exported, *out;
    const char *env[] = {"MASAD_DATABASE_URL", proc.db.app_url, NULL};
    const char *args[] = {"audit", "export-checkpoints", NULL};
    cr_assert_eq(masad_run(&exported, env, args), 0, "%s", exported);
    char *file = write_temp("emptied-checkpoints.jsonl", exported, strlen(exported));
    /* a superuser empties the log, its heads and its stored checkpoints */
    char *superuser = db_url_for(env_or_die("MASAD_ADMIN_DATABASE_URL"), proc.db.name), *err = NULL;
    cr_assert_eq(db_exec(superuser, "SET session_replication_role = replica; DELETE FROM audit_events;"
                                    " DELETE FROM audit_heads; DELETE FROM audit_checkpoints", &err), 0, "%s", err);
    cr_assert_eq(verify(&out, proc.db.app_url, NULL), 0, "without the export nothing shows: %s", out);
    cr_assert_eq(verify(&out, proc.db.app_url, file), 1, "%s", out);
    cr_assert(strstr(out, "FAULT: the log is empty, but exported checkpoint "), "%s", out);
    cr_assert(strstr(out, " events in it (the log was emptied)"), "%s", out);
}
