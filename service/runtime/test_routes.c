/*
 * Routes that exist only in test builds (meson -Dtest_routes=true), under
 * /_test/, so that the integration tests can exercise the edge and the job
 * threads: identity hand-off, body limits, a full queue, database loss and
 * the signer. Never compiled into a production binary. They live here, not
 * in edge/, because they use the database and the signer.
 */
#ifdef MASAD_TEST_ROUTES
#include <openssl/x509.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/log.h"
#include "crypto/crypto.h"
#include "runtime/runtime.h"
#include "store/store.h"

static const char *name_of(struct arena *a, const X509 *x)
{
    char *s = X509_NAME_oneline(X509_get_subject_name(x), NULL, 0);
    const char *out = arena_strdup(a, s);
    OPENSSL_free(s);
    return out;
}

static const char *subject_of(struct arena *a, const struct der_cert *c)
{
    const unsigned char *p = c->der;
    X509 *x = d2i_X509(NULL, &p, (long)c->len);
    const char *out = x ? name_of(a, x) : NULL;
    X509_free(x);
    return out;
}

void test_identity(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res)
{
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_str(g, "request_id", req->request_id);
    json_kv_str(g, "listener", req->listener == LISTENER_DEVICE ? "device" : "management");
    json_kv_str(g, "http_version", req->http_version >= 0x200 ? "2" : "1.1");
    json_kv_str(g, "peer", req->peer);
    json_kv_int(g, "chain_length", (long long)req->client_chain_len);
    json_str(g, "subjects");
    json_open_array(g);
    for (size_t i = 0; i < req->client_chain_len; i++)
        json_str(g, subject_of(ctx->arena, &req->client_chain[i]));
    json_close_array(g);
    /* the chain as the edge decoded it (req->client_x509), when it did */
    json_kv_int(g, "decoded_length", req->client_x509 ? (long long)req->client_chain_len : 0);
    json_str(g, "decoded_subjects");
    json_open_array(g);
    for (size_t i = 0; req->client_x509 && i < req->client_chain_len; i++)
        json_str(g, name_of(ctx->arena, req->client_x509[i]));
    json_close_array(g);
    json_close(g);
    size_t len;
    char *body = json_finish(g, ctx->arena, &len);
    response_set(res, ctx->arena, 200, "application/json", body, len);
}

void test_echo(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res)
{
    response_set(res, ctx->arena, 200, "application/octet-stream", req->body ? req->body : (const void *)"",
                 req->body_len);
}

void test_sleep(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res)
{
    long ms = req->query && !strncmp(req->query, "ms=", 3) ? strtol(req->query + 3, NULL, 10) : 0;
    if (ms < 0 || ms > 30000) {
        response_text(res, ctx->arena, 400, "ms must be 0..30000");
        return;
    }
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    response_text(res, ctx->arena, 200, arena_printf(ctx->arena, "slept %ld ms", ms));
}

/* A diagnostic written on a job thread (it carries the request id). */
void test_log(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res)
{
    (void)req;
    log_warn("a diagnostic from a job thread");
    response_text(res, ctx->arena, 200, "logged");
}

void test_db(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res)
{
    (void)req;
    struct masad_error err;
    if (store_ping(ctx->db, &err) != 0)
        response_text(res, ctx->arena, err.status, err.message);
    else
        response_text(res, ctx->arena, 200, "database ok");
}

void test_sign(struct job_ctx *ctx, const struct masad_request *req, struct masad_response *res)
{
    struct masad_error err;
    unsigned char *der;
    size_t len;
    /* id-ct-animaJSONVoucher, as vouchers will be signed */
    if (crypto_cms_sign(ctx->signer, ctx->arena, req->body ? req->body : (const void *)"",
                        req->body_len, "1.2.840.113549.1.9.16.1.40", &der, &len, &err) != 0) {
        response_text(res, ctx->arena, err.status, err.message);
        return;
    }
    response_use(res, 200, "application/pkcs7-mime", der, len); /* made in ctx->arena */
}
#endif
