/*
 * masad: a manufacturer's bootstrap service (BRSKI MASA, SZTP bootstrap
 * server, management API). This file only dispatches commands.
 */
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "admin/admin.h"
#include "audit/audit.h"
#include "common/yang.h"
#include "crypto/crypto.h"
#include "edge/edge.h"
#include "runtime/runtime.h"
#include "store/store.h"
#include "version.h"

/* ---- the command line: one getopt_long table per command ---- */

struct cli {
    const char *config, *dir, *name, *scope, *expires, *ca, *checkpoints;
    char **args;            /* the operands after the options */
    int arg_count;
};

struct command {
    const char *name;           /* "token create": the words before the options */
    const char *usage;          /* the options and operands, after the name */
    const char *about;
    const char *shortopts;      /* after ":h" */
    const struct option *longopts;
    int min_args, max_args;
};

#define HELP {"help", no_argument, NULL, 'h'}
#define CONFIG {"config", required_argument, NULL, 'c'}
static const struct option config_only[] = {HELP, CONFIG, {0}};
static const struct option migrate_opts[] = {HELP, {"dir", required_argument, NULL, 'd'}, {0}};
static const struct option create_opts[] = {HELP, CONFIG, {"name", required_argument, NULL, 'n'},
                                            {"scope", required_argument, NULL, 's'},
                                            {"expires", required_argument, NULL, 'e'}, {0}};
static const struct option verify_opts[] = {HELP, CONFIG, {"ca", required_argument, NULL, 'a'},
                                            {"checkpoints", required_argument, NULL, 'k'}, {0}};
static const struct option help_only[] = {HELP, {0}};

static const struct command commands[] = {
    {"serve", "[-c FILE]", "run the service (configuration: -c, MASAD_CONFIG, or "
     CONFIG_DEFAULT_PATH ")", "c:", config_only, 0, 0},
    {"check-config", "[-c FILE | FILE]", "check a configuration as serve would (files, keys, "
     "PKCS#11 URI, ports), print the verdict, exit", "c:", config_only, 0, 1},
    {"health", "[-c FILE]", "exit 0 when the running service is ready (container health check)",
     "c:", config_only, 0, 0},
    {"migrate", "[--dir DIR]", "apply database migrations as MASAD_MIGRATE_DATABASE_URL", "",
     migrate_opts, 0, 0},
    {"token create", "--name NAME --scope SCOPE[,SCOPE...] [--expires WHEN] [-c FILE]",
     "create a management API token and print it once; WHEN is an RFC 3339 time or a "
     "duration (90d, 12h, 30m, 3600s)", "c:", create_opts, 0, 0},
    {"token list", "[-c FILE]", "list the tokens: created, revoked, expires, last used, scopes",
     "c:", config_only, 0, 0},
    {"token revoke", "NAME [-c FILE]", "revoke a token, at once on every replica", "c:",
     config_only, 1, 1},
    {"audit verify", "[--ca FILE] [--checkpoints FILE] [-c FILE]",
     "check the audit log's hash chains and signed checkpoints", "c:", verify_opts, 0, 0},
    {"audit export-checkpoints", "[-c FILE]",
     "the signed checkpoints as JSON lines, to keep elsewhere", "c:", config_only, 0, 0},
    {"version", "", "print the version and the source revision", "", help_only, 0, 0},
    {0},
};

static void command_usage(FILE *out, const struct command *c)
{
    fprintf(out, "usage: masad %s%s%s\n  %s\n", c->name, *c->usage ? " " : "", c->usage, c->about);
}

static int usage(FILE *out)
{
    fprintf(out, "usage: masad COMMAND [options]   (masad COMMAND --help: that command)\n");
    for (const struct command *c = commands; c->name; c++)
        fprintf(out, "  %s%s%s\n      %s\n", c->name, *c->usage ? " " : "", c->usage, c->about);
    return out == stdout ? 0 : 2;
}

static int bad_usage(const struct command *c, const char *fmt, const char *what)
{
    fprintf(stderr, "masad %s: ", c->name);
    fprintf(stderr, fmt, what);
    fputc('\n', stderr);
    command_usage(stderr, c);
    return 2;
}

static void set_option(struct cli *o, int opt)
{
    const char **slot = opt == 'c' ? &o->config : opt == 'd' ? &o->dir : opt == 'n' ? &o->name
                        : opt == 's' ? &o->scope : opt == 'e' ? &o->expires
                        : opt == 'a' ? &o->ca : &o->checkpoints;
    *slot = optarg;
}

/* Options from argv[first] on (argv[first - 1] stands for the program
 * name). Returns -1 to go on and run the command, else the exit status:
 * 0 after --help, 2 on a usage error (printed with the command's usage). */
static int parse_options(int argc, char **argv, int first, const struct command *c,
                         struct cli *o)
{
    char shortopts[16];
    snprintf(shortopts, sizeof(shortopts), ":h%s", c->shortopts);
    char **av = argv + first - 1;
    int ac = argc - first + 1, opt;
    opterr = 0;
    optind = 0; /* glibc: start afresh */
    while ((opt = getopt_long(ac, av, shortopts, c->longopts, NULL)) != -1) {
        if (opt == 'h') {
            command_usage(stdout, c);
            return 0;
        }
        if (opt == ':')
            return bad_usage(c, "option %s needs a value", av[optind - 1]);
        if (opt == '?' && optopt) {
            char name[3] = {'-', (char)optopt, 0};
            return bad_usage(c, "unknown option %s", name);
        }
        if (opt == '?')
            return bad_usage(c, "unknown option %s", av[optind - 1]);
        set_option(o, opt);
    }
    o->args = av + optind;
    o->arg_count = ac - optind;
    if (o->arg_count < c->min_args)
        return bad_usage(c, "%s", "an operand is missing");
    if (o->arg_count > c->max_args)
        return bad_usage(c, "unexpected operand %s", o->args[c->max_args]);
    return -1;
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

/* What serve would refuse, without starting anything (STYLE.md: httpd -n). */
static int cmd_check_config(const struct cli *o)
{
    struct ly_ctx *yang = NULL;
    struct config *cfg = NULL;
    int rc = load(o->config ? o->config : o->arg_count ? o->args[0] : NULL, &yang, &cfg);
    if (rc == 0)
        rc = crypto_check_config(cfg, stderr) | config_check(cfg, stderr);
    if (rc == 0)
        printf("configuration OK: %s\n", cfg->path);
    config_free(cfg);
    ly_ctx_destroy(yang);
    return rc == 0 ? 0 : 1;
}

static int cmd_health(const struct cli *o)
{
    struct ly_ctx *yang = NULL;
    struct config *cfg = NULL;
    char why[300];
    int rc = load(o->config, &yang, &cfg);
    if (rc == 0 && (rc = edge_probe_ready(cfg, why, sizeof(why))) != 0)
        fprintf(stderr, "masad: not ready: %s\n", why);
    config_free(cfg);
    ly_ctx_destroy(yang);
    return rc == 0 ? 0 : 1;
}

static int cmd_migrate(const struct cli *o)
{
    const char *url = getenv("MASAD_MIGRATE_DATABASE_URL");
    if (!url || !*url) {
        fprintf(stderr, "masad: MASAD_MIGRATE_DATABASE_URL is not set (the schema owner's "
                        "connection URI)\n");
        return 2;
    }
    struct masad_error err;
    if (store_migrate(url, o->dir, stdout, &err) != 0) {
        fprintf(stderr, "masad: %s\n", err.message);
        return 1;
    }
    return 0;
}

/* The token and audit commands reach the database as the service does:
 * MASAD_DATABASE_URL, else the configuration's database/url. */
static const char *cli_database(const struct cli *o, struct ly_ctx **yang, struct config **cfg)
{
    const char *url = getenv("MASAD_DATABASE_URL");
    if ((!url || !*url) && load(o->config, yang, cfg) == 0)
        url = (*cfg)->database_url;
    if (!url || !*url) {
        fprintf(stderr, "masad: no database: set MASAD_DATABASE_URL or database/url in the "
                        "configuration\n");
        return NULL;
    }
    return url;
}

static int cmd_token(const char *sub, const struct cli *o)
{
    struct admin_token_args args = {sub, o->arg_count ? o->args[0] : o->name, o->scope,
                                    o->expires};
    char expires_at[32];
    /* bad input is refused before any configuration or database is read */
    if (strcmp(sub, "list") && admin_token_check(&args, expires_at, stderr) != 0)
        return 2;
    struct ly_ctx *yang = NULL;
    struct config *cfg = NULL;
    const char *url = cli_database(o, &yang, &cfg);
    int rc = url ? admin_token_command(url, &args, stdout, stderr) : 2;
    config_free(cfg);
    ly_ctx_destroy(yang);
    return rc;
}

/* Checkpoints are checked against --ca, else the signing certificate file
 * of the configuration (the signer and its chain). */
static int cmd_audit(const char *sub, const struct cli *o)
{
    bool verify = !strcmp(sub, "verify");
    struct ly_ctx *yang = NULL;
    struct config *cfg = NULL;
    const char *url = cli_database(o, &yang, &cfg), *ca = o->ca;
    /* without --ca: the configuration, when one is named or the default exists */
    if (verify && url && !ca && !cfg &&
        (o->config || access(config_path(NULL), F_OK) == 0) && load(o->config, &yang, &cfg) != 0)
        url = NULL;
    if (!ca && cfg)
        ca = cfg->signer_certificate;
    if (verify && url && !ca) {
        fprintf(stderr, "masad: audit verify checks the signed checkpoints against the signer's "
                        "certificate: pass --ca FILE (the signer certificate and its chain) or "
                        "-c FILE (the configuration naming it)\n");
        url = NULL;
    }
    struct store_options so = {url, 5, 600000};
    struct store_conn *db = NULL;
    struct masad_error err;
    int rc = 2;
    if (url && store_connect(&so, &db, &err) != 0)
        fprintf(stderr, "masad: %s\n", err.message);
    else if (url && !verify)
        rc = audit_export_checkpoints(db, stdout, stderr);
    else if (url)
        rc = audit_verify(db, ca, o->checkpoints, stdout);
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

/* The job runtime, then the edge in front of it; after the edge has
 * drained, the runtime (its threads may still finish a job when requests
 * were left unanswered, so then they get no time). */
static int serve(const struct config *cfg, struct crypto_signer *signer,
                 const struct crypto_anchors *idevid, const struct ly_ctx *yang)
{
    struct masad_error err;
    edge_block_signals(); /* before any thread starts */
    struct runtime *rt = runtime_start(cfg, signer, idevid, yang, &err);
    if (!rt) {
        log_error("%s", err.message);
        return 1;
    }
    struct edge_services services = {rt, crypto_cert_subject};
    int rc = edge_serve(cfg, &services, &err);
    if (rc < 0)
        log_error("%s", err.message);
    runtime_stop(rt, rc == 1 ? 0 : 5000);
    return rc < 0 ? 1 : rc;
}

static int cmd_serve(const struct cli *o)
{
    struct ly_ctx *yang = NULL;
    struct config *cfg = NULL;
    struct crypto_signer *signer = NULL;
    struct crypto_anchors *idevid = NULL;
    struct masad_error err;
    int rc = 1;
    if (load(o->config, &yang, &cfg) != 0)
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
    /* an HSM that is briefly unavailable (503) gets a few more tries; a
     * refused PIN does not (500): the HSM would lock the user */
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
    log_info("masad %s (%s) starting; signing key in %s", MASAD_VERSION, MASAD_REVISION,
             crypto_signer_is_hsm(signer) ? "a PKCS#11 token" : "a FILE (development only)");
    if (load_anchors(cfg, &idevid, &err) != 0) {
        log_error("idevid: %s", err.message);
        goto out;
    }
    rc = serve(cfg, signer, idevid, yang);
out:
    crypto_anchors_free(idevid);
    crypto_signer_free(signer);
    config_free(cfg);
    ly_ctx_destroy(yang);
    return rc;
}

static int cmd_version(const struct cli *o)
{
    (void)o;
    printf("masad %s (%s)\n", MASAD_VERSION, MASAD_REVISION);
    return 0;
}

/* The command named by argv[1] (and argv[2] for token and audit). */
static const struct command *find_command(int argc, char **argv, int *words)
{
    for (const struct command *c = commands; c->name; c++) {
        size_t n = strlen(argv[1]);
        if (strncmp(c->name, argv[1], n) || (c->name[n] && c->name[n] != ' '))
            continue;
        *words = c->name[n] ? 2 : 1;
        if (*words == 1 || (argc > 2 && !strcmp(c->name + n + 1, argv[2])))
            return c;
    }
    return NULL;
}

/* `masad token --help`, `masad audit` alone: the usage of its commands */
static int group_usage(const char *group, bool help)
{
    FILE *out = help ? stdout : stderr;
    if (!help)
        fprintf(stderr, "masad: %s needs a subcommand\n", group);
    for (const struct command *c = commands; c->name; c++)
        if (!strncmp(c->name, group, strlen(group)) && c->name[strlen(group)] == ' ')
            command_usage(out, c);
    return help ? 0 : 2;
}

static int run(const struct command *c, const struct cli *o)
{
    if (!strncmp(c->name, "token ", 6))
        return cmd_token(c->name + 6, o);
    if (!strncmp(c->name, "audit ", 6))
        return cmd_audit(c->name + 6, o);
    int (*fn)(const struct cli *) = !strcmp(c->name, "serve")          ? cmd_serve
                                    : !strcmp(c->name, "check-config") ? cmd_check_config
                                    : !strcmp(c->name, "health")       ? cmd_health
                                    : !strcmp(c->name, "migrate")      ? cmd_migrate
                                                                       : cmd_version;
    return fn(o);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
        return usage(stdout);
    if (!strcmp(cmd, "--version"))
        return cmd_version(NULL);
    int words = 1;
    const struct command *c = find_command(argc, argv, &words);
    if (!c && (!strcmp(cmd, "token") || !strcmp(cmd, "audit"))) {
        bool help = argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"));
        if (argc > 2 && !help)
            fprintf(stderr, "masad: unknown command %s %s\n", cmd, argv[2]);
        return group_usage(cmd, help);
    }
    if (!c) {
        fprintf(stderr, "masad: unknown command %s\n", cmd);
        return usage(stderr);
    }
    struct cli o = {0};
    int rc = parse_options(argc, argv, 1 + words, c, &o);
    return rc >= 0 ? rc : run(c, &o);
}
