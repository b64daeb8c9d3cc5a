/*
 * masad: a manufacturer's bootstrap service (BRSKI MASA, SZTP bootstrap
 * server, management API). This file only dispatches commands.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "admin/admin.h"
#include "audit/audit.h"
#include "common/yang.h"
#include "crypto/crypto.h"
#include "edge/edge.h"
#include "store/store.h"

#ifndef MASAD_VERSION
#define MASAD_VERSION "unknown"
#endif

static int usage(FILE *out)
{
    fprintf(out,
            "usage: masad COMMAND [options]\n"
            "  serve [-c FILE]          run the service (configuration: -c, MASAD_CONFIG, or %s)\n"
            "  check-config [FILE]      validate a configuration file, print the verdict, exit\n"
            "  health [-c FILE]         exit 0 when the running service is ready (container health check)\n"
            "  migrate [--dir DIR]      apply database migrations as MASAD_MIGRATE_DATABASE_URL\n"
            "  token create --name N --scope S[,S...] | token list | token revoke N\n"
            "                           management API tokens (MASAD_DATABASE_URL, or -c FILE)\n"
            "  audit verify [--checkpoints FILE] [--ca FILE]\n"
            "                           check the audit log's hash chains and signed checkpoints\n"
            "  audit export-checkpoints  the signed checkpoints as JSON lines, to keep elsewhere\n"
            "  version                  print the version\n",
            CONFIG_DEFAULT_PATH);
    return out == stdout ? 0 : 2;
}

/* -c FILE / --config FILE, or a bare FILE for check-config */
static const char *config_arg(int argc, char **argv, bool bare)
{
    for (int i = 2; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc)
            return argv[i + 1];
        if (bare && argv[i][0] != '-')
            return argv[i];
    }
    return NULL;
}

static int load(const char *path, struct ly_ctx **yang, struct config **cfg)
{
    struct masad_error err;
    if (yang_context_new(yang, &err) != 0 || config_load(path, *yang, cfg, &err) != 0) {
        fprintf(stderr, "masad: %s\n", err.message);
        return -1;
    }
    return 0;
}

static int cmd_check_config(int argc, char **argv)
{
    struct ly_ctx *yang = NULL;
    struct config *cfg = NULL;
    int rc = load(config_arg(argc, argv, true), &yang, &cfg);
    if (rc == 0)
        printf("configuration %s OK\n", cfg->path);
    config_free(cfg);
    ly_ctx_destroy(yang);
    return rc == 0 ? 0 : 1;
}

static int cmd_health(int argc, char **argv)
{
    struct ly_ctx *yang = NULL;
    struct config *cfg = NULL;
    char why[300];
    int rc = load(config_arg(argc, argv, false), &yang, &cfg);
    if (rc == 0 && (rc = edge_probe_ready(cfg, why, sizeof(why))) != 0)
        fprintf(stderr, "masad: not ready: %s\n", why);
    config_free(cfg);
    ly_ctx_destroy(yang);
    return rc == 0 ? 0 : 1;
}

static int cmd_migrate(int argc, char **argv)
{
    const char *dir = NULL;
    for (int i = 2; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
    const char *url = getenv("MASAD_MIGRATE_DATABASE_URL");
    if (!url || !*url) {
        fprintf(stderr, "masad: MASAD_MIGRATE_DATABASE_URL is not set (the schema owner's "
                        "connection URI)\n");
        return 2;
    }
    struct masad_error err;
    if (store_migrate(url, dir, stdout, &err) != 0) {
        fprintf(stderr, "masad: %s\n", err.message);
        return 1;
    }
    return 0;
}

/* The token and audit commands reach the database as the service does:
 * MASAD_DATABASE_URL, else the configuration's database/url. */
static const char *cli_database(int argc, char **argv, struct ly_ctx **yang, struct config **cfg)
{
    const char *url = getenv("MASAD_DATABASE_URL");
    if ((!url || !*url) && load(config_arg(argc, argv, false), yang, cfg) == 0)
        url = (*cfg)->database_url;
    if (!url || !*url) {
        fprintf(stderr, "masad: no database: set MASAD_DATABASE_URL or database/url in the "
                        "configuration\n");
        return NULL;
    }
    return url;
}

static int cmd_token(int argc, char **argv)
{
    struct ly_ctx *yang = NULL;
    struct config *cfg = NULL;
    const char *url = cli_database(argc, argv, &yang, &cfg);
    int rc = url ? admin_token_command(url, argc, argv, stdout, stderr) : 2;
    config_free(cfg);
    ly_ctx_destroy(yang);
    return rc;
}

static const char *option(int argc, char **argv, const char *name)
{
    for (int i = 2; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return NULL;
}

/* Checkpoints are checked against --ca, else the signing certificate file
 * of the configuration (the signer and its chain). */
static int cmd_audit(int argc, char **argv)
{
    const char *sub = argc > 2 ? argv[2] : "";
    if (strcmp(sub, "verify") && strcmp(sub, "export-checkpoints")) {
        fprintf(stderr, "usage: masad audit verify [--checkpoints FILE] [--ca FILE] | "
                        "masad audit export-checkpoints\n");
        return 2;
    }
    struct ly_ctx *yang = NULL;
    struct config *cfg = NULL;
    const char *url = cli_database(argc, argv, &yang, &cfg);
    const char *ca = option(argc, argv, "--ca");
    bool verify = !strcmp(sub, "verify");
    if (verify && url && !ca && !cfg && load(config_arg(argc, argv, false), &yang, &cfg) != 0)
        url = NULL;
    if (!ca && cfg)
        ca = cfg->signer_certificate;
    struct store_options so = {url, 5, 600000};
    struct store_conn *db = NULL;
    struct masad_error err;
    int rc = 2;
    if (url && store_connect(&so, &db, &err) != 0)
        fprintf(stderr, "masad: %s\n", err.message);
    else if (url && !verify)
        rc = audit_export_checkpoints(db, stdout, stderr);
    else if (url)
        rc = audit_verify(db, ca, option(argc, argv, "--checkpoints"), stdout);
    store_close(db);
    config_free(cfg);
    ly_ctx_destroy(yang);
    return rc;
}

static int check_database(const struct config *cfg)
{
    struct masad_error err;
    int rc = store_check_schema(cfg->database_url, &err);
    if (rc != 0)
        log_error("%s", err.message);
    return rc;
}

static enum crypto_serial_source anchor_serial_source(enum config_serial_from from)
{
    return from == CONFIG_SERIAL_FROM_COMMON_NAME        ? SERIAL_FROM_COMMON_NAME
           : from == CONFIG_SERIAL_FROM_HARDWARE_MODULE_NAME ? SERIAL_FROM_HARDWARE_MODULE_NAME
                                                             : SERIAL_FROM_SERIAL_NUMBER;
}

static int load_anchors(const struct config *cfg, struct crypto_anchors **out,
                        struct masad_error *err)
{
    struct crypto_anchor_spec *specs = calloc(cfg->idevid_anchor_count + 1, sizeof(*specs));
    for (size_t i = 0; i < cfg->idevid_anchor_count; i++)
        specs[i] = (struct crypto_anchor_spec){cfg->idevid_anchors[i].name,
                                               cfg->idevid_anchors[i].certificate,
                                               anchor_serial_source(cfg->idevid_anchors[i].serial_from)};
    int rc = crypto_anchors_new(specs, cfg->idevid_anchor_count, out, err);
    free(specs);
    if (rc == 0 && cfg->idevid_anchor_count == 0)
        log_warn("no IDevID trust anchor is configured (idevid/trust-anchor): devices cannot "
                 "be recognised");
    return rc;
}

static int cmd_serve(int argc, char **argv)
{
    struct ly_ctx *yang = NULL;
    struct config *cfg = NULL;
    struct crypto_signer *signer = NULL;
    struct crypto_anchors *idevid = NULL;
    struct masad_error err;
    int rc = 1;
    if (load(config_arg(argc, argv, false), &yang, &cfg) != 0)
        goto out;
    log_set_level(cfg->log_level);
    if (!cfg->database_url) {
        log_error("no database: set database/url in %s or MASAD_DATABASE_URL", cfg->path);
        goto out;
    }
    if (check_database(cfg) != 0)
        goto out;
    struct crypto_signer_options so = {cfg->signer_key, cfg->signer_pkcs11_module,
                                       cfg->signer_certificate, cfg->pkcs11_pin};
    int opened = crypto_signer_open(&so, &signer, &err);
    /* an HSM that is briefly unavailable (503) gets a few more tries */
    for (int i = 0; opened != 0 && err.status == 503 && i < 5; i++) {
        log_warn("signer: %s (trying again)", err.message);
        struct timespec pause = {0, 300 * 1000000L};
        nanosleep(&pause, NULL);
        opened = crypto_signer_open(&so, &signer, &err);
    }
    config_forget_secrets(cfg);
    if (opened != 0) {
        log_error("signer: %s", err.message);
        goto out;
    }
    log_info("masad %s starting; signing key in %s", MASAD_VERSION,
             crypto_signer_is_hsm(signer) ? "a PKCS#11 token" : "a FILE (development only)");
    if (load_anchors(cfg, &idevid, &err) != 0) {
        log_error("idevid: %s", err.message);
        goto out;
    }
    rc = edge_serve(cfg, signer, idevid, yang, &err);
    if (rc < 0) {
        log_error("%s", err.message);
        rc = 1;
    }
out:
    crypto_anchors_free(idevid);
    crypto_signer_free(signer);
    config_free(cfg);
    ly_ctx_destroy(yang);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc, argv);
    if (!strcmp(cmd, "check-config"))
        return cmd_check_config(argc, argv);
    if (!strcmp(cmd, "health"))
        return cmd_health(argc, argv);
    if (!strcmp(cmd, "migrate"))
        return cmd_migrate(argc, argv);
    if (!strcmp(cmd, "token"))
        return cmd_token(argc, argv);
    if (!strcmp(cmd, "audit"))
        return cmd_audit(argc, argv);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("masad %s\n", MASAD_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
        return usage(stdout);
    fprintf(stderr, "masad: unknown command %s\n", cmd);
    return usage(stderr);
}
