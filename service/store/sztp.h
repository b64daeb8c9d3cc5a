#ifndef MASAD_STORE_SZTP_H
#define MASAD_STORE_SZTP_H
/* What the SZTP bootstrap server (service/sztp/) reads and writes: device
 * passwords, the owner's SZTP settings, reusable ownership vouchers and
 * progress reports. Everything returned lives in the arena. */
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "store/store.h"

struct store_bytes {
    const unsigned char *data;
    size_t len;
};

/* A device's SZTP password (docs/management-api.md: SHA-256(salt || password)). */
struct store_sztp_password {
    bool device_found;
    struct store_bytes salt;           /* data NULL: the device has no password */
    struct store_bytes hash;
};

int store_sztp_password(struct store_conn *c, struct arena *a, const char *serial,
                        struct store_sztp_password *out, struct masad_error *err);

/* The device's current owner and that owner's SZTP settings. */
struct store_sztp_owner {
    bool device_found;
    const char *owner;                 /* NULL: no owner */
    const char *conveyed;              /* RFC 7951 JSON, or NULL */
    struct store_bytes signed_conveyed;/* owner-signed CMS; data NULL: none */
    bool signed_onboarding;            /* what it holds, noted when it was stored */
    struct store_bytes *certs;         /* owner chain as DER, end-entity first */
    size_t cert_count;
};

/* A nonceless SZTP voucher that may be reused (RFC 8572 §3.3); id 0: none. */
struct store_sztp_voucher {
    long long id;
    time_t expires_on;
    struct store_bytes cms;
};

/* Read in the caller's transaction, locking the device row (FOR SHARE) so
 * that its ownership cannot change before the answer is committed. With
 * `reusable`, also the device's newest nonceless SZTP voucher pinning the
 * owner chain's last certificate (id 0 when there is none). */
int store_sztp_owner(struct store_conn *c, struct arena *a, const char *serial,
                     struct store_sztp_owner *out, struct store_sztp_voucher *reusable,
                     struct masad_error *err);

/* Whether the device is registered. */
int store_sztp_device_exists(struct store_conn *c, struct arena *a, const char *serial,
                             bool *exists, struct masad_error *err);

struct store_sztp_host_key {
    const char *algorithm;
    const char *key_data;              /* base64 as the device sent it */
};

/* One report-progress (RFC 8572 §7.3), stored and pruned to `kept` per device. */
struct store_sztp_progress {
    const char *serial;
    const char *type;
    const char *message;               /* or NULL */
    const struct store_sztp_host_key *host_keys;
    size_t host_key_count;
    const char *const *trust_anchors;  /* base64 CMS certs-only */
    size_t trust_anchor_count;
    int kept;
};

int store_sztp_progress_add(struct store_conn *c, struct arena *a,
                            const struct store_sztp_progress *p, struct masad_error *err);

#endif
