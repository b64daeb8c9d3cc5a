/* Issued vouchers, of either protocol. */
#include <stdio.h>

#include "store/store_internal.h"
#include "store/vouchers.h"

const struct store_statement store_vouchers_statements[] = {
    {"voucher_add",
     "INSERT INTO vouchers (serial_number, owner_id, protocol, assertion, nonce, created_on,"
     " expires_on, domain_cert_sha256, domain_id, registrar, voucher, request)"
     " VALUES ($1, $2, $3, $4, $5, to_timestamp($6::double precision),"
     " to_timestamp($7::bigint), $8, $9, $10, $11, $12) RETURNING id", 12},
    {NULL, NULL, 0},
};

int store_voucher_add(struct store_conn *c, struct arena *a, const struct store_voucher *v,
                      long long *id, struct masad_error *err)
{
    /* to the microsecond: BRSKI renewals compare it with ownership changes */
    char created[48], expires[24];
    snprintf(created, sizeof(created), "%lld.%06ld", (long long)v->created_on.tv_sec,
             v->created_on.tv_nsec / 1000);
    snprintf(expires, sizeof(expires), "%lld", (long long)v->expires_on);
    struct store_param p[] = {
        P_TEXT(v->serial), P_TEXT(v->owner), P_TEXT(v->protocol), P_TEXT(v->assertion),
        v->nonce ? P_BYTES(v->nonce, v->nonce_len) : P_TEXT(NULL), P_TEXT(created),
        P_TEXT(v->expires_on ? expires : NULL), P_BYTES(v->domain_cert_sha256, 32),
        P_TEXT(v->domain_id), P_TEXT(v->registrar), P_BYTES(v->voucher, v->voucher_len),
        v->request ? P_BYTES(v->request, v->request_len) : P_TEXT(NULL)};
    PGresult *r;
    if (store_run(c, a, "voucher_add", 12, p, &r, err) != 0)
        return -1;
    *id = row_int(r, 0, 0);
    return 0;
}
