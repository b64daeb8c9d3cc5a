#ifndef MASAD_STORE_VOUCHERS_H
#define MASAD_STORE_VOUCHERS_H
/* Issued vouchers, of either protocol (table vouchers). */
#include <stddef.h>
#include <time.h>

#include "store/store.h"

/* One voucher as recorded. Byte fields go to bytea columns as they are. */
struct store_voucher {
    const char *serial;
    const char *owner;                 /* NULL: none (trust on first use) */
    const char *protocol;              /* "brski" or "sztp" */
    const char *assertion;
    const unsigned char *nonce;        /* NULL: nonceless */
    size_t nonce_len;
    struct timespec created_on;        /* kept to the microsecond */
    time_t expires_on;                 /* 0: never (nonced) */
    unsigned char domain_cert_sha256[32];
    const char *domain_id;
    const char *registrar;             /* NULL for SZTP */
    const unsigned char *voucher;      /* the signed CMS */
    size_t voucher_len;
    const unsigned char *request;      /* the voucher-request (BRSKI), or NULL */
    size_t request_len;
};

/* Records v; *id is its row id. */
int store_voucher_add(struct store_conn *c, struct arena *a, const struct store_voucher *v,
                      long long *id, struct masad_error *err);

#endif
