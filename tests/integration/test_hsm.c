/*
 * The HSM, black-box: a masad whose SoftHSM token goes away and comes back
 * (docs/operations.md, HSM), and one started with a wrong PIN. Each test
 * works on a copy of the run's token store, so that the other tests keep
 * theirs.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct masad_proc proc;
static char *store;   /* the copy: STORE/softhsm2.conf and STORE/tokens */

/* A private copy of the token store, and SOFTHSM2_CONF naming it for the
 * masad this test starts. */
static void copy_token_store(void)
{
    char *conf = strdup(env_or_die("SOFTHSM2_CONF"));
    *strrchr(conf, '/') = '\0';
    store = tmp_path("hsm-%d", (int)getpid());
    char *out;
    cr_assert_eq(sh(&out, "rm -rf '%s' && mkdir -p '%s' && cp -a '%s/tokens' '%s/tokens' && "
                          "printf 'directories.tokendir = %%s\\nobjectstore.backend = file\\n"
                          "log.level = ERROR\\n' '%s/tokens' > '%s/softhsm2.conf'",
                    store, store, conf, store, store, store), 0, "%s", out);
    free(out);
    free(conf);
    setenv("SOFTHSM2_CONF", fmt("%s/softhsm2.conf", store), 1);
}

static void start_on_copy(void)
{
    copy_token_store();
    cr_assert(masad_start(&proc, NULL), "masad did not start: %s", read_text(proc.stderr_path));
    cr_assert(masad_wait_ready(&proc, 10000), "not ready: %s", read_text(proc.stderr_path));
}

static void stop(void) { masad_stop_expect_clean(&proc); }

static long status_of(const char *path, const struct http_opts *o)
{
    struct http_result r = http(&proc, path, o);
    long status = r.status;
    http_result_free(&r);
    return status;
}

static const struct http_opts sign = {.method = "POST", .body = "{}", .body_len = 2,
                                      .content_type = "application/json"};

/* Polls until path answers want, for at most limit_ms: a bound, not a
 * measurement. */
static bool eventually(const char *path, const struct http_opts *o, long want, int limit_ms)
{
    for (int waited = 0; waited < limit_ms; waited += 100) {
        if (status_of(path, o) == want)
            return true;
        struct timespec pause = {0, 100 * 1000000L};
        nanosleep(&pause, NULL);
    }
    return false;
}

/* Issue: the token store moved away for a while left vouchers 503 until a
 * restart. The signer re-opens the module and logs in again by itself. */
Test(hsm, signing_recovers_when_the_token_comes_back, .init = start_on_copy, .fini = stop,
     .timeout = 30)
{
    cr_assert_eq(status_of("/_test/sign", &sign), 200);
    char *out;
    cr_assert_eq(sh(&out, "mv '%s/tokens' '%s/away'", store, store), 0, "%s", out);
    cr_assert(eventually("/readyz", NULL, 503, 5000), "/readyz stayed up without the token");
    cr_assert_eq(status_of("/_test/sign", &sign), 503);
    cr_assert_eq(sh(&out, "mv '%s/away' '%s/tokens'", store, store), 0, "%s", out);
    cr_assert(eventually("/readyz", NULL, 200, 15000), "/readyz did not recover: %s",
              read_text(proc.stderr_path));
    cr_assert_eq(status_of("/_test/sign", &sign), 200);
    char *log = read_text(proc.stderr_path);
    cr_assert(strstr(log, "the PKCS#11 token is usable again"), "%s", log);
}

static int count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* Issue: a wrong PIN was tried six times at start, and real HSMs lock the
 * user after a few tries. It is now fatal at the first refusal. */
Test(hsm, a_wrong_pin_is_tried_once_and_is_fatal, .timeout = 30)
{
    copy_token_store();
    cr_assert(masad_start(&proc, NULL), "masad did not start: %s", read_text(proc.stderr_path));
    cr_assert_eq(masad_stop(&proc, 10000), 0);
    char *out;
    const char *env[] = {"MASAD_PKCS11_PIN", "wrong-pin", "MASAD_DATABASE_URL", proc.db.app_url,
                         NULL};
    const char *args[] = {"serve", "-c", proc.config_path, NULL};
    cr_assert_eq(masad_run(&out, env, args), 1, "%s", out);
    /* the log is JSON: quotes are escaped */
    cr_assert(strstr(out, "PKCS#11 login to token \\\"masad-test\\\" refused the PIN: "
                          "check MASAD_PKCS11_PIN"), "%s", out);
    cr_assert_eq(count(out, "PKCS#11 login"), 1, "%s", out);
    cr_assert_null(strstr(out, "trying again"), "%s", out);
    free(out);
}

Test(hsm, a_missing_pin_is_fatal, .timeout = 30)
{
    copy_token_store();
    cr_assert(masad_start(&proc, NULL), "masad did not start: %s", read_text(proc.stderr_path));
    cr_assert_eq(masad_stop(&proc, 10000), 0);
    char *out;
    const char *env[] = {"MASAD_PKCS11_PIN", "", "MASAD_DATABASE_URL", proc.db.app_url, NULL};
    const char *args[] = {"serve", "-c", proc.config_path, NULL};
    cr_assert_eq(masad_run(&out, env, args), 1, "%s", out);
    cr_assert(strstr(out, "no PIN for PKCS#11 token \\\"masad-test\\\": set MASAD_PKCS11_PIN"),
              "%s", out);
    cr_assert_null(strstr(out, "trying again"), "%s", out);
    free(out);
}
