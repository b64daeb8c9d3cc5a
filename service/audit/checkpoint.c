/* Signed checkpoints: every chain's head, the time, signed with the
 * service's key (docs/audit.md, Checkpoints). */
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "common/encoding.h"
#include "common/json.h"
#include "common/metrics.h"
#include "crypto/crypto.h"
#include "store/store_pq.h"

#define OID_DATA "1.2.840.113549.1.7.1"

/* {"at":...,"heads":[{"chain":..,"chain_seq":..,"hash":".."}...]}: keys in
 * byte order, no whitespace — canonical, so the signed text is the value */
static const char *heads_text(struct arena *a, const char *at, const PGresult *heads)
{
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_str(g, "at", at);
    json_str(g, "heads");
    json_open_array(g);
    for (int i = 0; i < PQntuples(heads); i++) {
        json_open(g);
        json_kv_int(g, "chain", atoll(PQgetvalue(heads, i, 0)));
        json_kv_int(g, "chain_seq", atoll(PQgetvalue(heads, i, 1)));
        json_kv_str(g, "hash", PQgetvalue(heads, i, 2));
        json_close(g);
    }
    json_close_array(g);
    json_close(g);
    return json_finish(g, a, NULL);
}

static bool due(const PGresult *r, unsigned every_events, unsigned every_seconds)
{
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) /* another replica is at it */
        return false;
    long long events = atoll(PQgetvalue(r, 0, 3));
    if (events <= 0)
        return false;
    return PQgetisnull(r, 0, 2) || events >= (long long)every_events ||
           atoll(PQgetvalue(r, 0, 2)) >= (long long)every_seconds;
}

int audit_checkpoint_maybe(struct store_conn *db, struct crypto_signer *signer, struct arena *a,
                           unsigned every_events, unsigned every_seconds, struct masad_error *err)
{
    PGresult *state, *heads;
    if (store_begin(db, err) != 0)
        return -1;
    if (store_exec(db, a, "audit_checkpoint_due", 0, NULL, &state, err) != 0)
        goto fail;
    if (!PQgetisnull(state, 0, 2))
        metrics_checkpoint_age(atoll(PQgetvalue(state, 0, 2)));
    if (!due(state, every_events, every_seconds)) {
        store_rollback(db);
        return 0;
    }
    if (store_exec(db, a, "audit_heads", 0, NULL, &heads, err) != 0)
        goto fail;
    const char *at = PQgetvalue(state, 0, 1);
    const char *text = heads_text(a, at, heads);
    unsigned char *der;
    size_t der_len;
    if (crypto_cms_sign(signer, a, text, strlen(text), OID_DATA, &der, &der_len, err) != 0)
        goto fail;
    const char *params[] = {at, text, hex_encode(a, der, der_len)};
    if (store_exec(db, a, "audit_checkpoint_add", 3, params, NULL, err) != 0 ||
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
    char after[32] = "0";
    for (;;) {
        PGresult *r;
        const char *params[] = {after, "500"};
        if (store_exec(db, a, "audit_checkpoint_page", 2, params, &r, &e) != 0) {
            fprintf(err, "masad: %s\n", e.message);
            arena_free(a);
            return 1;
        }
        for (int i = 0; i < PQntuples(r); i++) {
            struct json_value *heads;
            const char *text = PQgetvalue(r, i, 2);
            yajl_gen g = json_gen_new();
            json_open(g);
            json_kv_int(g, "id", atoll(PQgetvalue(r, i, 0)));
            json_kv_str(g, "at", PQgetvalue(r, i, 1));
            json_str(g, "heads");
            if (json_parse(a, text, strlen(text), 8, &heads, &e) == 0)
                json_write_value(g, json_get(heads, "heads"));
            else
                json_null(g);
            json_kv_str(g, "signature", PQgetvalue(r, i, 3));
            json_close(g);
            fprintf(out, "%s\n", json_finish(g, a, NULL));
            snprintf(after, sizeof(after), "%s", PQgetvalue(r, i, 0));
        }
        if (PQntuples(r) < 500)
            break;
        arena_reset(a);
    }
    arena_free(a);
    return 0;
}
