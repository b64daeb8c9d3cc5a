/* Signed checkpoints: every chain's head, the time, signed with the
 * service's key (docs/audit.md, Checkpoints). */
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "common/encoding.h"
#include "common/json.h"
#include "common/metrics.h"
#include "crypto/crypto.h"
#include "store/audit.h"

#define OID_DATA "1.2.840.113549.1.7.1"

/* {"at":...,"heads":[{"chain":..,"chain_seq":..,"hash":".."}...]}: keys in
 * byte order, no whitespace — canonical, so the signed text is the value */
static const char *heads_text(struct arena *a, const char *at,
                              const struct store_audit_head *heads, size_t n)
{
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_str(g, "at", at);
    json_str(g, "heads");
    json_open_array(g);
    for (size_t i = 0; i < n; i++) {
        char hash[65];
        hex_encode_to(heads[i].hash, 32, hash);
        json_open(g);
        json_kv_int(g, "chain", heads[i].chain);
        json_kv_int(g, "chain_seq", heads[i].chain_seq);
        json_kv_str(g, "hash", hash);
        json_close(g);
    }
    json_close_array(g);
    json_close(g);
    return json_finish(g, a, NULL);
}

static bool due(const struct store_audit_due *d, unsigned every_events, unsigned every_seconds)
{
    if (!d->locked) /* another replica is at it */
        return false;
    if (d->events <= 0)
        return false;
    return !d->has_last || d->events >= (long long)every_events ||
           d->last_age >= (long long)every_seconds;
}

int audit_checkpoint_maybe(struct store_conn *db, struct crypto_signer *signer, struct arena *a,
                           unsigned every_events, unsigned every_seconds, struct masad_error *err)
{
    struct store_audit_due state;
    struct store_audit_head *heads;
    size_t n;
    if (store_begin(db, err) != 0)
        return -1;
    if (store_audit_checkpoint_due(db, a, &state, err) != 0)
        goto fail;
    if (state.has_last)
        metrics_checkpoint_age(state.last_age);
    if (!due(&state, every_events, every_seconds)) {
        store_rollback(db);
        return 0;
    }
    if (store_audit_heads(db, a, &heads, &n, err) != 0)
        goto fail;
    const char *text = heads_text(a, state.now, heads, n);
    unsigned char *der;
    size_t der_len;
    if (crypto_cms_sign(signer, a, text, strlen(text), OID_DATA, &der, &der_len, err) != 0)
        goto fail;
    if (store_audit_checkpoint_add(db, a, state.now, text, der, der_len, err) != 0 ||
        store_commit(db, err) != 0)
        goto fail;
    metrics_checkpoint_age(0);
    return 1;
fail:
    store_rollback(db);
    return -1;
}

int audit_export_checkpoints(struct store_conn *db, FILE *out, FILE *err)
{
    struct arena *a = arena_new();
    struct masad_error e;
    long long after = 0;
    for (;;) {
        struct store_audit_checkpoint *k;
        size_t n;
        if (store_audit_checkpoint_page(db, a, after, 500, &k, &n, &e) != 0) {
            fprintf(err, "masad: %s\n", e.message);
            arena_free(a);
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            struct json_value *heads;
            yajl_gen g = json_gen_new();
            json_open(g);
            json_kv_int(g, "id", k[i].id);
            json_kv_str(g, "at", k[i].at);
            json_str(g, "heads");
            if (json_parse(a, k[i].heads, strlen(k[i].heads), 8, &heads, &e) == 0)
                json_write_value(g, json_get(heads, "heads"));
            else
                json_null(g);
            json_kv_str(g, "signature", base64_encode(a, k[i].signature, k[i].signature_len));
            json_close(g);
            fprintf(out, "%s\n", json_finish(g, a, NULL));
            after = k[i].id;
        }
        if (n < 500)
            break;
        arena_reset(a);
    }
    arena_free(a);
    return 0;
}
