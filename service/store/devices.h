#ifndef MASAD_STORE_DEVICES_H
#define MASAD_STORE_DEVICES_H
/* Devices (table devices) and their per-device listings: vouchers issued
 * and SZTP progress reports. Times are RFC 3339 UTC text. */
#include <stdbool.h>
#include <stddef.h>

#include "store/store.h"

/* A device's registration as written: its SZTP password is SHA-256(salt ||
 * password) (docs/management-api.md); salt and hash NULL: none. */
struct store_device_secret {
    const char *serial_number;
    const char *product;
    const unsigned char *salt, *hash;
    size_t salt_len, hash_len;
};

/* Locks those of the n serials that exist (FOR UPDATE, in byte order of serial, so
 * that concurrent batches queue up) and gives their rows, in serial order. */
int store_devices_lock(struct store_conn *c, struct arena *a, const char *const *serials,
                       size_t n, struct store_device_secret **out, size_t *count,
                       struct masad_error *err);
/* Creates or replaces n devices in one statement; a device whose fields
 * are unchanged is not rewritten (its updated_at stays). */
int store_devices_upsert(struct store_conn *c, struct arena *a,
                         const struct store_device_secret *d, size_t n, struct masad_error *err);

/* A device as the management API shows it. */
struct store_device {
    const char *serial_number, *product, *created_at, *updated_at;
    const char *owner_id;                   /* current owner, or NULL */
    long long vouchers_issued;
    const char *progress_at;                /* the last progress report, or NULL */
    const char *progress_type, *progress_message;
    long long progress_pruned;
};
/* 1 and *out, 0 when no such device, -1 on error. */
int store_device_get(struct store_conn *c, struct arena *a, const char *serial,
                     struct store_device *out, struct masad_error *err);
/* Up to limit devices after serial `after` ("" from the start), of owner
 * (NULL: any), by serial. */
int store_device_list(struct store_conn *c, struct arena *a, const char *after,
                      const char *owner, long limit, struct store_device **out, size_t *count,
                      struct masad_error *err);
/* 1 when the device exists, 0 when not, -1 on error. */
int store_device_exists(struct store_conn *c, struct arena *a, const char *serial,
                        struct masad_error *err);

/* A voucher issued to a device. */
struct store_device_voucher {
    long long id;
    const char *created_on, *expires_on;    /* expires_on NULL: never */
    const char *assertion, *owner_id, *protocol, *format;
    const unsigned char *nonce;             /* NULL: nonceless */
    size_t nonce_len;
    unsigned char domain_cert_sha256[32];
};
/* Up to limit of the device's vouchers with id below `before` (-1: from
 * the newest), newest first. */
int store_device_vouchers(struct store_conn *c, struct arena *a, const char *serial,
                          long long before, long limit, struct store_device_voucher **out,
                          size_t *count, struct masad_error *err);

/* An SZTP progress report; the JSON columns as text, or NULL. */
struct store_device_progress {
    long long id;
    const char *at, *progress_type, *message, *ssh_host_keys, *trust_anchor_certs;
};
/* As store_device_vouchers, for progress reports. */
int store_device_progress(struct store_conn *c, struct arena *a, const char *serial,
                          long long before, long limit, struct store_device_progress **out,
                          size_t *count, struct masad_error *err);

#endif
