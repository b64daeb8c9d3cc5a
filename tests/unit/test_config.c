#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/yang.h"

static struct ly_ctx *yang;

static void setup(void)
{
    struct masad_error err;
    cr_assert_eq(yang_context_new(&yang, &err), 0, "%s", err.message);
    unsetenv("MASAD_DATABASE_URL");
    unsetenv("MASAD_PKCS11_PIN");
    unsetenv("MASAD_CONFIG");
}

static void teardown(void) { ly_ctx_destroy(yang); }

static char *write_config(const char *text)
{
    char *path = strdup("/tmp/masad-config-test-XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

#define MINIMAL                                                                              \
    "\"masad-config:tls\": {\"certificate\": \"tls.crt\", \"private-key\": \"/abs/tls.key\"}," \
    "\"masad-config:signer\": {\"key\": \"pkcs11:token=t;object=k\", \"certificate\": \"masa.crt\"}"

static int load(const char *text, struct config **cfg, struct masad_error *err)
{
    char *path = write_config(text);
    int rc = config_load(path, yang, cfg, err);
    unlink(path);
    free(path);
    return rc;
}

Test(config, minimal_file_gets_the_defaults, .init = setup, .fini = teardown)
{
    struct config *c;
    struct masad_error err;
    cr_assert_eq(load("{" MINIMAL "}", &c, &err), 0, "%s", err.message);
    cr_assert_str_eq(c->device.address, "::");
    cr_assert_eq(c->device.port, 8443);
    cr_assert_str_eq(c->management.address, "127.0.0.1");
    cr_assert_eq(c->management.port, 9443);
    cr_assert_eq(c->event_loops, (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    cr_assert_eq(c->job_threads, 2 * (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    cr_assert_eq(c->queue_capacity, 1024);
    cr_assert_eq(c->shutdown_grace, 30);
    cr_assert_eq(c->database_connect_timeout, 3);
    cr_assert_null(c->database_url);
    /* relative paths are taken from the file's folder, absolute ones kept */
    cr_assert_str_eq(c->tls_certificate, "/tmp/tls.crt");
    cr_assert_str_eq(c->tls_private_key, "/abs/tls.key");
    cr_assert_str_eq(c->signer_key, "pkcs11:token=t;object=k");
    cr_assert_str_eq(c->signer_certificate, "/tmp/masa.crt");
    config_free(c);
}

Test(config, environment_overrides_the_file, .init = setup, .fini = teardown)
{
    struct config *c;
    struct masad_error err;
    setenv("MASAD_DATABASE_URL", "postgresql:///from-env", 1);
    setenv("MASAD_PKCS11_PIN", "4321", 1);
    cr_assert_eq(load("{" MINIMAL ", \"masad-config:database\": {\"url\": \"postgresql:///file\"}}",
                      &c, &err), 0, "%s", err.message);
    cr_assert_str_eq(c->database_url, "postgresql:///from-env");
    cr_assert_str_eq(c->pkcs11_pin, "4321");
    config_forget_secrets(c);
    cr_assert_null(c->pkcs11_pin);
    config_free(c);
}

Test(config, masad_config_names_the_file, .init = setup, .fini = teardown)
{
    setenv("MASAD_CONFIG", "/etc/elsewhere.json", 1);
    cr_assert_str_eq(config_path(NULL), "/etc/elsewhere.json");
    cr_assert_str_eq(config_path("/x.json"), "/x.json");
    unsetenv("MASAD_CONFIG");
    cr_assert_str_eq(config_path(NULL), CONFIG_DEFAULT_PATH);
}

static void rejected(const char *text, const char *expect1, const char *expect2)
{
    struct config *c = NULL;
    struct masad_error err;
    cr_assert_eq(load(text, &c, &err), -1, "accepted: %s", text);
    cr_assert(strstr(err.message, expect1), "message: %s", err.message);
    cr_assert(strstr(err.message, expect2), "message: %s", err.message);
    cr_assert(strstr(err.message, "/tmp/masad-config-test-"), "no file name: %s", err.message);
}

Test(config, bad_files_are_refused_with_path_and_reason, .init = setup, .fini = teardown)
{
    rejected("{}", "Mandatory node \"certificate\"", "/masad-config:tls/certificate");
    rejected("{" MINIMAL ", \"masad-config:service\": {\"job-threads\": \"many\"}}",
             "Invalid", "/masad-config:service/job-threads");
    rejected("{" MINIMAL ", \"masad-config:service\": {\"queue-capacity\": 0}}",
             "out of the allowed range", "/masad-config:service/queue-capacity");
    rejected("{" MINIMAL ", \"masad-config:listeners\": {\"device\": {\"port\": 70000}}}",
             "70000", "/masad-config:listeners/device/port");
    rejected("{" MINIMAL ", \"masad-config:listeners\": {\"device\": {\"address\": \"localhost\"}}}",
             "localhost", "/masad-config:listeners/device/address");
    rejected("{" MINIMAL ", \"masad-config:service\": {\"workers\": 4}}", "workers", "service");
    rejected("{" MINIMAL ", \"masad-config:service\": {\"log-level\": \"chatty\"}}",
             "chatty", "/masad-config:service/log-level");
    rejected("{\"masad-config:tls\": ", "configuration", "invalid");
}

Test(config, missing_file_is_named, .init = setup, .fini = teardown)
{
    struct config *c;
    struct masad_error err;
    cr_assert_eq(config_load("/nonexistent/masad.json", yang, &c, &err), -1);
    cr_assert_str_eq(err.message, "/nonexistent/masad.json: No such file or directory");
}
