#ifndef MASAD_COMMON_CONFIG_H
#define MASAD_COMMON_CONFIG_H
/*
 * The service configuration: one JSON file validated by libyang against
 * yang/masad-config.yang, then environment overrides (MASAD_DATABASE_URL,
 * MASAD_PKCS11_PIN). Read once at start; read-only afterwards, so any thread
 * may read it.
 */
#include <libyang/libyang.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "common/error.h"
#include "common/net.h"
#include "common/log.h"

#define CONFIG_DEFAULT_PATH "/etc/masad/masad.json"
#define CONFIG_MAX_FILE_SIZE (1024 * 1024)

struct config_listener {
    char *address;
    uint16_t port;
    bool proxy_protocol;                    /* expects a PROXY v1 line ... */
    struct net_prefix *proxy_sources;       /* ... from these only */
    size_t proxy_source_count;
    bool client_cert_headers;               /* RFC 9440 headers ... */
    struct net_prefix *cert_proxies;        /* ... honoured from these only */
    size_t cert_proxy_count;
};

enum brski_unowned { BRSKI_UNOWNED_REFUSE, BRSKI_UNOWNED_LOGGED_WITH_PROXIMITY };

/* masad-config idevid/trust-anchor/serial-number-from */
enum config_serial_from {
    CONFIG_SERIAL_FROM_SERIAL_NUMBER,
    CONFIG_SERIAL_FROM_COMMON_NAME,
    CONFIG_SERIAL_FROM_HARDWARE_MODULE_NAME
};

struct config_anchor {
    char *name;
    char *certificate;          /* resolved path */
    enum config_serial_from serial_from;
};

struct config {
    char *path;                 /* the file read */
    unsigned event_loops;       /* resolved: never 0 */
    unsigned job_threads;       /* resolved: never 0 */
    unsigned queue_capacity;
    unsigned retry_after;       /* seconds */
    unsigned shutdown_grace;    /* seconds */
    unsigned job_time_limit;    /* seconds a job may run before /healthz fails */
    enum log_level log_level;
    struct config_listener device;
    struct config_listener management;
    bool device_metrics;        /* /metrics on the device listener too */
    char *tls_certificate;      /* absolute or relative to the cwd */
    char *tls_private_key;
    char *database_url;         /* NULL when neither file nor environment has one */
    unsigned database_connect_timeout;   /* seconds */
    unsigned database_statement_timeout; /* milliseconds */
    struct config_anchor *idevid_anchors;
    size_t idevid_anchor_count;
    enum brski_unowned brski_unowned;
    unsigned brski_nonceless_lifetime;   /* seconds */
    unsigned brski_log_max_events;
    unsigned brski_log_nonced_per_domain;
    unsigned brski_log_nonceless_per_domain;
    unsigned sztp_voucher_lifetime;      /* seconds */
    unsigned audit_checkpoint_events;
    unsigned audit_checkpoint_seconds;
    char *signer_key;           /* pkcs11: URI, or a PEM file path */
    char *signer_pkcs11_module;
    char *signer_certificate;
    char *pkcs11_pin;           /* from MASAD_PKCS11_PIN; wiped by config_forget_secrets() */
};

/* path NULL: MASAD_CONFIG, else CONFIG_DEFAULT_PATH. On failure err names the
 * file, the path inside it and the reason. */
int config_load(const char *path, const struct ly_ctx *yang, struct config **out,
                struct masad_error *err);
void config_forget_secrets(struct config *cfg);
void config_free(struct config *cfg);

/* check-config, the configuration's own part: the listeners use distinct
 * ports and a database is named (the files it names are crypto/'s to
 * check: crypto_check_config). Prints each fault to err; 0 when none. */
int config_check(const struct config *cfg, FILE *err);
/* One check-config fault: "masad: FILE: PATH: reason" on err. */
void config_fault(const struct config *cfg, FILE *err, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Resolves the path the service would read (argument, MASAD_CONFIG, default). */
const char *config_path(const char *arg);

#endif
