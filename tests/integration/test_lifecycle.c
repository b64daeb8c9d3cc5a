/*
 * Starting, stopping and surviving: schema checks at start, SIGTERM with a
 * request in flight, and a PostgreSQL restart under a running masad.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

Test(lifecycle, refuses_to_start_without_a_schema, .timeout = 60)
{
    struct masad_proc p;
    struct masad_opts o = {.no_migrate = true};
    cr_assert_not(masad_start(&p, &o), "started on an empty database");
    char *err = read_text(p.stderr_path);
    cr_assert(strstr(err, "the database has no masad schema: run `masad migrate`"), "%s", err);
}

Test(lifecycle, refuses_an_older_schema_naming_what_is_missing, .timeout = 60)
{
    struct masad_proc p;
    struct test_db db;
    db_create(&db);
    cr_assert_eq(db_exec(db.owner_url,
                         "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text,"
                         " checksum text, applied_at timestamptz);"
                         "GRANT SELECT ON schema_migrations TO masad_runtime", NULL), 0);
    struct masad_opts o = {.database_url = db.app_url};
    cr_assert_not(masad_start(&p, &o));
    char *err = read_text(p.stderr_path);
    cr_assert(strstr(err, "the database schema is older than this masad: migration "
                          "0001_init.sql is not applied; run `masad migrate`"), "%s", err);
}

Test(lifecycle, check_config_names_path_and_reason)
{
    char *bad = write_temp("bad.json", "{\"masad-config:service\": {\"queue-capacity\": -1}}", 48);
    char *out;
    const char *args[] = {"check-config", bad, NULL};
    cr_assert_eq(masad_run(&out, NULL, args), 1);
    cr_assert(strstr(out, bad), "%s", out);
    cr_assert(strstr(out, "/masad-config:service/queue-capacity"), "%s", out);

    char *tls = pki_path("tls-chain.crt"), *key = pki_path("tls.key"), *text;
    cr_assert(asprintf(&text,
                       "{\"masad-config:tls\": {\"certificate\": \"%s\", \"private-key\": \"%s\"},"
                       " \"masad-config:signer\": {\"key\": \"pkcs11:token=x;object=y\", \"certificate\": \"%s\"}}",
                       tls, key, tls) > 0);
    char *good = write_temp("good.json", text, strlen(text));
    const char *args2[] = {"check-config", good, NULL};
    cr_assert_eq(masad_run(&out, NULL, args2), 0, "%s", out);
    cr_assert(strstr(out, "OK"), "%s", out);
}

Test(lifecycle, a_file_key_is_accepted_with_a_warning, .timeout = 60)
{
    struct masad_proc p;
    char *key = pki_path("masa-file.key"), *cert = pki_path("masa-file.crt");
    struct masad_opts o = {.signer_key = key, .signer_cert = cert};
    cr_assert(masad_start(&p, &o), "%s", read_text(p.stderr_path));
    cr_assert_eq(masad_stop(&p, 15000), 0);
    char *err = read_text(p.stderr_path);
    cr_assert(strstr(err, "for development only"), "%s", err);
}

struct call {
    struct masad_proc *p;
    struct http_result r;
};

static void *slow(void *arg)
{
    struct call *c = arg;
    c->r = http(c->p, "/_test/sleep?ms=2000", NULL);
    return NULL;
}

Test(lifecycle, sigterm_lets_the_request_in_flight_finish_then_exits_0, .timeout = 60)
{
    struct masad_proc p;
    cr_assert(masad_start(&p, NULL));
    struct call c = {&p, {0}};
    pthread_t t;
    pthread_create(&t, NULL, slow, &c);
    sleep_ms(500);
    kill(p.pid, SIGTERM);
    sleep_ms(300);
    /* no longer accepting */
    struct http_result late = http(&p, "/healthz", NULL);
    cr_assert_eq(late.status, 0, "a new connection was accepted after SIGTERM");
    pthread_join(t, NULL);
    cr_assert_eq(c.r.status, 200, "%s", c.r.error);
    cr_assert_str_eq(c.r.body, "slept 2000 ms\n");
    cr_assert_eq(masad_stop(&p, 15000), 0, "%s", read_text(p.stderr_path));
    char *err = read_text(p.stderr_path);
    cr_assert(strstr(err, "every accepted request was answered"), "%s", err);
}

/* PostgreSQL of its own, so that stopping it disturbs no other test. */
Test(lifecycle, database_restart_gives_503_then_recovers_without_restart, .timeout = 120)
{
    char *dir = tmp_path("pg-restart-%d", (int)getpid());
    const char *dev = env_or_die("MASAD_TEST_DEV");
    char *urls;
    cr_assert_eq(sh(&urls, "%s/postgres.sh init %s 55999 2>/dev/null", dev, dir), 0, "%s", urls);
    char *app = strstr(urls, "MASAD_DATABASE_URL='") + 20, *owner = strstr(urls, "MASAD_MIGRATE_DATABASE_URL='") + 28;
    *strchr(app, '\'') = 0;
    *strchr(owner, '\'') = 0;
    char *out;
    const char *env[] = {"MASAD_MIGRATE_DATABASE_URL", owner, NULL};
    const char *args[] = {"migrate", NULL};
    cr_assert_eq(masad_run(&out, env, args), 0, "%s", out);

    struct masad_proc p;
    struct masad_opts o = {.database_url = app};
    cr_assert(masad_start(&p, &o), "%s", read_text(p.stderr_path));
    cr_assert(masad_wait_ready(&p, 10000));
    struct http_result r = http(&p, "/_test/db", NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);

    cr_assert_eq(sh(NULL, "%s/postgres.sh stop %s", dev, dir), 0);
    r = http(&p, "/_test/db", NULL);
    cr_assert_eq(r.status, 503, "%ld %s", r.status, r.body);
    cr_assert(strstr(r.body, "the database is unavailable"), "%s", r.body);
    bool unready = false;
    for (int i = 0; i < 60 && !unready; i++, sleep_ms(50)) {
        struct http_result ready = http(&p, "/readyz", NULL);
        unready = ready.status == 503 && strstr(ready.body, "database is unavailable");
    }
    cr_assert(unready, "/readyz did not notice");

    cr_assert_eq(sh(NULL, "%s/postgres.sh start %s 55999", dev, dir), 0);
    long status = 0;
    for (int i = 0; i < 100 && status != 200; i++, sleep_ms(100)) {
        r = http(&p, "/_test/db", NULL);
        status = r.status;
    }
    cr_assert_eq(status, 200, "no recovery: %s", r.body);
    cr_assert(masad_wait_ready(&p, 5000), "not ready again");
    struct http_opts mgmt = {.management = true};
    r = http(&p, "/metrics", &mgmt);
    cr_assert_null(strstr(r.body, "masad_db_reconnects_total 0\n"), "%s", r.body);
    cr_assert_eq(masad_stop(&p, 15000), 0);
    sh(NULL, "%s/postgres.sh destroy %s", dev, dir);
}

Test(lifecycle, health_answers_for_the_running_service, .timeout = 60)
{
    struct masad_proc p;
    cr_assert(masad_start(&p, NULL));
    cr_assert(masad_wait_ready(&p, 10000));
    char *out;
    const char *args[] = {"health", "-c", p.config_path, NULL};
    cr_assert_eq(masad_run(&out, NULL, args), 0, "%s", out);
    cr_assert_eq(masad_stop(&p, 15000), 0);
    cr_assert_eq(masad_run(&out, NULL, args), 1, "%s", out);
    cr_assert(strstr(out, "masad: not ready: cannot connect to the management listener [127.0.0.1]:"), "%s", out);
}
