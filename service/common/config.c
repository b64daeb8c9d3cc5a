#include "common/config.h"

#include <errno.h>
#include <stdarg.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/yang.h"

const char *config_path(const char *arg)
{
    if (arg)
        return arg;
    const char *env = getenv("MASAD_CONFIG");
    return env && *env ? env : CONFIG_DEFAULT_PATH;
}

static char *read_file(const char *path, struct masad_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_set(err, 500, "config", "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(CONFIG_MAX_FILE_SIZE + 1);
    size_t n = buf ? fread(buf, 1, CONFIG_MAX_FILE_SIZE + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > CONFIG_MAX_FILE_SIZE) {
        free(buf);
        error_set(err, 500, "config", "%s: %s", path,
                  bad ? "cannot be read" : "larger than 1 MiB");
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static const char *leaf(const struct lyd_node *tree, const char *xpath)
{
    struct lyd_node *node = NULL;
    if (lyd_find_path(tree, xpath, 0, &node) != LY_SUCCESS || !node)
        return NULL;
    return lyd_get_value(node);
}

static unsigned leaf_uint(const struct lyd_node *tree, const char *xpath)
{
    const char *v = leaf(tree, xpath);
    return v ? (unsigned)strtoul(v, NULL, 10) : 0;
}

/* Relative paths are taken from the configuration file's folder. */
static char *resolve_path(const char *config_file, const char *value)
{
    if (!value)
        return NULL;
    if (value[0] == '/')
        return strdup(value);
    char *copy = strdup(config_file);
    char *dir = dirname(copy);
    char *out = NULL;
    if (asprintf(&out, "%s/%s", dir, value) < 0)
        out = NULL;
    free(copy);
    return out;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static enum log_level parse_level(const char *s)
{
    if (s && !strcmp(s, "debug"))
        return LOG_DEBUG;
    if (s && !strcmp(s, "warn"))
        return LOG_WARN;
    if (s && !strcmp(s, "error"))
        return LOG_ERROR;
    return LOG_INFO;
}

static void fill(struct config *c, const struct lyd_node *t)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    c->event_loops = leaf_uint(t, "/masad-config:service/event-loops");
    if (!c->event_loops)
        c->event_loops = (unsigned)cores;
    c->job_threads = leaf_uint(t, "/masad-config:service/job-threads");
    if (!c->job_threads)
        c->job_threads = 2 * (unsigned)cores;
    c->queue_capacity = leaf_uint(t, "/masad-config:service/queue-capacity");
    c->retry_after = leaf_uint(t, "/masad-config:service/retry-after");
    c->shutdown_grace = leaf_uint(t, "/masad-config:service/shutdown-grace");
    c->job_time_limit = leaf_uint(t, "/masad-config:service/job-time-limit");
    c->log_level = parse_level(leaf(t, "/masad-config:service/log-level"));
    c->device.address = dup_or_null(leaf(t, "/masad-config:listeners/device/address"));
    c->device.port = (uint16_t)leaf_uint(t, "/masad-config:listeners/device/port");
    const char *metrics = leaf(t, "/masad-config:listeners/device/metrics");
    c->device_metrics = metrics && !strcmp(metrics, "true");
    c->management.address = dup_or_null(leaf(t, "/masad-config:listeners/management/address"));
    c->management.port = (uint16_t)leaf_uint(t, "/masad-config:listeners/management/port");
    c->tls_certificate = resolve_path(c->path, leaf(t, "/masad-config:tls/certificate"));
    c->tls_private_key = resolve_path(c->path, leaf(t, "/masad-config:tls/private-key"));
    c->database_url = dup_or_null(leaf(t, "/masad-config:database/url"));
    c->database_connect_timeout = leaf_uint(t, "/masad-config:database/connect-timeout");
    c->database_statement_timeout = leaf_uint(t, "/masad-config:database/statement-timeout");
    c->audit_checkpoint_events = leaf_uint(t, "/masad-config:audit/checkpoint-events");
    c->audit_checkpoint_seconds = leaf_uint(t, "/masad-config:audit/checkpoint-seconds");
    const char *key = leaf(t, "/masad-config:signer/key");
    c->signer_key = key && strncmp(key, "pkcs11:", 7) ? resolve_path(c->path, key) : dup_or_null(key);
    c->signer_pkcs11_module = resolve_path(c->path, leaf(t, "/masad-config:signer/pkcs11-module"));
    c->signer_certificate = resolve_path(c->path, leaf(t, "/masad-config:signer/certificate"));
}

/* A presence container's prefix list, e.g. listeners/device/proxy-protocol. */
static bool fill_prefixes(const struct lyd_node *t, const char *xpath, struct net_prefix **out,
                          size_t *count)
{
    struct ly_set *set = NULL;
    *out = NULL;
    *count = 0;
    struct lyd_node *container = NULL;
    const char *list = strrchr(xpath, '|');
    char path[256];
    snprintf(path, sizeof(path), "%.*s", (int)(list - xpath), xpath);
    if (lyd_find_path(t, path, 0, &container) != LY_SUCCESS || !container)
        return false;
    if (lyd_find_xpath(container, list + 1, &set) == LY_SUCCESS && set) {
        *out = calloc(set->count ? set->count : 1, sizeof(**out));
        for (uint32_t i = 0; i < set->count; i++)
            if (net_prefix_parse(lyd_get_value(set->dnodes[i]), &(*out)[*count]) == 0)
                (*count)++;
        ly_set_free(set, NULL);
    }
    return true;
}

static void fill_listener(struct config_listener *l, const struct lyd_node *t, const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "/masad-config:listeners/%s/proxy-protocol|trusted-sources", name);
    l->proxy_protocol = fill_prefixes(t, path, &l->proxy_sources, &l->proxy_source_count);
    snprintf(path, sizeof(path), "/masad-config:listeners/%s/client-certificate-headers|trusted-proxies",
             name);
    l->client_cert_headers = fill_prefixes(t, path, &l->cert_proxies, &l->cert_proxy_count);
}

static void fill_anchors(struct config *c, const struct lyd_node *t)
{
    struct ly_set *set = NULL;
    if (lyd_find_xpath(t, "/masad-config:idevid/trust-anchor", &set) != LY_SUCCESS || !set)
        return;
    c->idevid_anchors = calloc(set->count ? set->count : 1, sizeof(*c->idevid_anchors));
    for (uint32_t i = 0; i < set->count; i++) {
        const struct lyd_node *n = set->dnodes[i];
        struct config_anchor *a = &c->idevid_anchors[c->idevid_anchor_count++];
        a->name = dup_or_null(leaf(n, "name"));
        a->certificate = resolve_path(c->path, leaf(n, "certificate"));
        const char *from = leaf(n, "serial-number-from");
        a->serial_from = !from || !strcmp(from, "subject-serial-number") ? CONFIG_SERIAL_FROM_SERIAL_NUMBER
                         : !strcmp(from, "subject-common-name") ? CONFIG_SERIAL_FROM_COMMON_NAME
                                                                : CONFIG_SERIAL_FROM_HARDWARE_MODULE_NAME;
    }
    ly_set_free(set, NULL);
}

static void fill_brski(struct config *c, const struct lyd_node *t)
{
    const char *policy = leaf(t, "/masad-config:brski/unowned-devices");
    c->brski_unowned = policy && !strcmp(policy, "logged-with-proximity")
                           ? BRSKI_UNOWNED_LOGGED_WITH_PROXIMITY
                           : BRSKI_UNOWNED_REFUSE;
    c->brski_nonceless_lifetime = leaf_uint(t, "/masad-config:brski/nonceless-voucher-lifetime");
    c->sztp_voucher_lifetime = leaf_uint(t, "/masad-config:sztp/ownership-voucher-lifetime");
    c->brski_log_max_events = leaf_uint(t, "/masad-config:brski/audit-log/max-events");
    c->brski_log_nonced_per_domain = leaf_uint(t, "/masad-config:brski/audit-log/nonced-per-domain");
    c->brski_log_nonceless_per_domain =
        leaf_uint(t, "/masad-config:brski/audit-log/nonceless-per-domain");
}

static void apply_environment(struct config *c)
{
    const char *url = getenv("MASAD_DATABASE_URL");
    if (url && *url) {
        free(c->database_url);
        c->database_url = strdup(url);
    }
    const char *pin = getenv("MASAD_PKCS11_PIN");
    if (pin && *pin)
        c->pkcs11_pin = strdup(pin);
}

int config_load(const char *path, const struct ly_ctx *yang, struct config **out,
                struct masad_error *err)
{
    path = config_path(path);
    char *text = read_file(path, err);
    if (!text)
        return -1;
    struct lyd_node *tree = NULL;
    LY_ERR rc = lyd_parse_data_mem(yang, text, LYD_JSON, LYD_PARSE_STRICT | LYD_PARSE_ONLY, 0,
                                   &tree);
    free(text);
    /* validate the configuration module as a whole, so that a file missing
     * a mandatory leaf is refused even when it holds nothing at all (and
     * ietf-yang-library's own mandatory nodes are not asked for) */
    if (rc == LY_SUCCESS)
        rc = lyd_validate_module(&tree, ly_ctx_get_module_implemented(yang, "masad-config"), 0,
                                 NULL);
    if (rc != LY_SUCCESS) {
        char what[4200];
        snprintf(what, sizeof(what), "configuration %s is invalid", path);
        lyd_free_all(tree);
        return yang_error(yang, err, 500, "config", what);
    }
    struct config *c = calloc(1, sizeof(*c));
    c->path = strdup(path);
    fill(c, tree);
    fill_listener(&c->device, tree, "device");
    fill_listener(&c->management, tree, "management");
    fill_anchors(c, tree);
    fill_brski(c, tree);
    lyd_free_all(tree);
    apply_environment(c);
    *out = c;
    return 0;
}

void config_forget_secrets(struct config *cfg)
{
    if (cfg->pkcs11_pin) {
        OPENSSL_cleanse(cfg->pkcs11_pin, strlen(cfg->pkcs11_pin));
        free(cfg->pkcs11_pin);
        cfg->pkcs11_pin = NULL;
    }
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    config_forget_secrets(cfg);
    free(cfg->path);
    free(cfg->device.address);
    free(cfg->device.proxy_sources);
    free(cfg->device.cert_proxies);
    free(cfg->management.address);
    free(cfg->management.proxy_sources);
    free(cfg->management.cert_proxies);
    free(cfg->tls_certificate);
    free(cfg->tls_private_key);
    free(cfg->database_url);
    free(cfg->signer_key);
    free(cfg->signer_pkcs11_module);
    free(cfg->signer_certificate);
    for (size_t i = 0; i < cfg->idevid_anchor_count; i++) {
        free(cfg->idevid_anchors[i].name);
        free(cfg->idevid_anchors[i].certificate);
    }
    free(cfg->idevid_anchors);
    free(cfg);
}

/* ---- check-config: what serve would refuse, before it starts ---- */

void config_fault(const struct config *c, FILE *err, const char *where, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(err, "masad: %s: %s: ", c->path, where);
    vfprintf(err, fmt, ap);
    fputc('\n', err);
    va_end(ap);
}

int config_check(const struct config *c, FILE *err)
{
    int rc = 0;
    if (c->device.port == c->management.port) {
        config_fault(c, err, "/masad-config:listeners/management/port",
                     "the device and management listeners both use port %u", c->device.port);
        rc = -1;
    }
    if (!c->database_url || !*c->database_url) {
        config_fault(c, err, "/masad-config:database/url",
                     "no database: set it, or MASAD_DATABASE_URL in serve's environment");
        rc = -1;
    }
    return rc;
}
