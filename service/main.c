/*
 * masad: a manufacturer's bootstrap service (BRSKI MASA, SZTP bootstrap
 * server, management API). This file only dispatches commands.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "admin/admin.h"
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
            "  migrate [--dir DIR]      apply database migrations as MASAD_MIGRATE_DATABASE_URL\n"
            "  token create --name N --scope S[,S...] | token list | token revoke N\n"
            "                           management API tokens (MASAD_DATABASE_URL, or -c FILE)\n"
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

/* The token commands reach the database as the service does. */
static int cmd_token(int argc, char **argv)
{
    const char *url = getenv("MASAD_DATABASE_URL");
    struct ly_ctx *yang = NULL;
    struct config *cfg = NULL;
    if ((!url || !*url) && load(config_arg(argc, argv, false), &yang, &cfg) == 0)
        url = cfg->database_url;
    int rc = 2;
    if (url && *url)
        rc = admin_token_command(url, argc, argv, stdout, stderr);
    else
        fprintf(stderr, "masad: no database: set MASAD_DATABASE_URL or database/url in the "
                        "configuration\n");
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

static int cmd_serve(int argc, char **argv)
{
    struct ly_ctx *yang = NULL;
    struct config *cfg = NULL;
    struct crypto_signer *signer = NULL;
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
    config_forget_secrets(cfg);
    if (opened != 0) {
        log_error("signer: %s", err.message);
        goto out;
    }
    log_info("masad %s starting; signing key in %s", MASAD_VERSION,
             crypto_signer_is_hsm(signer) ? "a PKCS#11 token" : "a FILE (development only)");
    rc = edge_serve(cfg, signer, yang, &err);
    if (rc < 0) {
        log_error("%s", err.message);
        rc = 1;
    }
out:
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
    if (!strcmp(cmd, "migrate"))
        return cmd_migrate(argc, argv);
    if (!strcmp(cmd, "token"))
        return cmd_token(argc, argv);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("masad %s\n", MASAD_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
        return usage(stdout);
    fprintf(stderr, "masad: unknown command %s\n", cmd);
    return usage(stderr);
}
