#ifndef MASAD_SZTP_INTERNAL_H
#define MASAD_SZTP_INTERNAL_H
/*
 * Folder-private to sztp/. Each RPC is read → decide → commit:
 *   read    negotiate the encoding, authenticate the device and parse the
 *           input into a claim (restconf.c), or a refusal;
 *   facts   what the store says about the device (store/sztp.h);
 *   decide  pure: what to convey, or a refusal (decide.c, unit-tested);
 *   commit  sign and record the voucher and the audit event in one
 *           transaction, and answer.
 * A refusal is a value until sztp_refuse() renders it as the RESTCONF
 * error answer and records it.
 */
#include <libyang/libyang.h>
#include <stdbool.h>
#include <time.h>

#include "common/refusal.h"
#include "store/sztp.h"
#include "sztp/sztp.h"

enum sztp_format { SZTP_JSON, SZTP_XML };

/* Progress reports kept per device (docs/sztp.md, Progress): older ones are
 * pruned, and counted. */
#define SZTP_PROGRESS_KEPT 1000

/* Bounds on what a device may have kept (RFC 8572 §7.3 sets none). */
#define SZTP_MAX_HOST_KEYS 16
#define SZTP_MAX_ALGORITHM 64
#define SZTP_MAX_KEY_DATA (16 * 1024)       /* base64 */
#define SZTP_MAX_TRUST_ANCHORS 8
#define SZTP_MAX_ANCHOR_CMS (64 * 1024)     /* base64 */
#define SZTP_MAX_ANCHOR_CERTS 8             /* certificates in one trust-anchor-cert */

/* A refusal with its RFC 8040 §7 error-type and error-tag. */
struct sztp_refusal {
    struct refusal r;              /* r.status 0: none */
    const char *type;              /* "protocol" or "application" */
    const char *tag;               /* "access-denied", "invalid-value", ... */
};

/* A refusal whose sentence is formatted into a; status 0 is no refusal. */
struct sztp_refusal sztp_refusal(struct arena *a, int status, const char *type, const char *tag,
                                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static inline struct sztp_refusal sztp_none(void) { return (struct sztp_refusal){{0, NULL, NULL}, NULL, NULL}; }

extern const char SZTP_DENIED[];   /* the one 401 sentence: nothing tells whether a serial exists */

/* One SZTP call in progress. */
struct sztp_call {
    struct job_ctx *ctx;
    struct arena *a;
    const struct masad_request *req;
    struct masad_response *res;
    enum sztp_format format;
    const char *rpc;               /* "get-bootstrapping-data" or "report-progress" */
    const char *serial;            /* once authenticated */
    const char *owner;
};

/* ---- read (restconf.c) ---- */

/* RFC 8040 §5.2: the encoding of the input from its media type, and the
 * body's size bound. Pure. */
struct sztp_refusal sztp_negotiate(struct arena *a, const char *content_type, size_t body_len,
                                   enum sztp_format *format);

/* How the device authenticated: by IDevID, by HTTP Basic, or both. */
struct sztp_auth {
    const char *by_cert;           /* the certificate's serial, or NULL */
    bool bad_cert;                 /* a certificate was sent and does not verify */
    bool basic_present;            /* an Authorization: Basic header */
    const char *by_basic;          /* the serial whose password matched, or NULL */
    bool basic_adds_nothing;       /* Basic names the certificate's serial, which has no password */
};

/* The authenticated serial (*serial) or the 401. Pure. */
struct sztp_refusal sztp_auth_decide(struct arena *a, const struct sztp_auth *auth,
                                     const char **serial);

/* Negotiates, authenticates (c->serial) and parses the RPC input (the RPC
 * node, freed with the arena). */
struct sztp_refusal sztp_read(struct sztp_call *c, struct lyd_node **rpc);

/* A leaf of the input, or NULL. */
const char *sztp_leaf(const struct lyd_node *rpc, const char *name);

/* ---- answer (restconf.c) ---- */

/* Renders the refusal as a RESTCONF error (RFC 8040 §7.1) in the request's
 * encoding and records it through audit_refuse (after rolling back). */
void sztp_refuse(struct sztp_call *c, const struct sztp_refusal *r);

/* The RPC's output with these leaves (strings), validated against the
 * module; a 500 refusal when it does not validate. */
struct sztp_refusal sztp_answer(struct sztp_call *c, const char *const *names,
                                const char *const *values, size_t n);

/* ---- get-bootstrapping-data: the claim ---- */

struct sztp_claim {
    const char *serial;
    enum sztp_format format;
    bool prefer_signed;            /* signed-data-preferred */
    const unsigned char *nonce;    /* decoded, or NULL */
    size_t nonce_len;
    bool csr_support;              /* RFC 9646: recorded until masad asks for CSRs */
};

/* ---- per-owner artifacts (owner_cache.c) ---- */

/* What a signed answer needs of the owner's certificate chain, made once
 * per chain and shared, read-only, by the job threads: a process-wide cache
 * of at most SZTP_OWNER_CACHE_SIZE kits, least recently used out, keyed by
 * SHA-256 of the stored certificates (a changed chain is a new key, so
 * replicas need no invalidation). */
#define SZTP_OWNER_CACHE_SIZE 256

struct sztp_owner_kit {
    struct arena *arena;           /* holds the kit */
    unsigned char key[32];
    const char *certs_b64;         /* owner-certificate: CMS certs-only (RFC 8572 §3.2), base64 */
    const unsigned char *pinned_der;  /* RFC 8572 §3.3: the last certificate, pinned by vouchers */
    size_t pinned_der_len;
    unsigned char pinned_sha256[32];
    const char *domain_id;         /* its subject key identifier (else SPKI SHA-256), base64 */
};

/* The kit of these certificates (DER, end-entity first), held until the
 * arena is reset; NULL when none of them is usable. */
const struct sztp_owner_kit *sztp_owner_kit(struct arena *a, const struct store_bytes *certs,
                                            size_t n);
/* Kits cached now. */
size_t sztp_owner_cache_count(void);

/* ---- get-bootstrapping-data facts and decision (decide.c) ---- */

struct sztp_facts {
    struct store_sztp_owner owner;
    bool conveyed_onboarding;      /* the unsigned conveyed information is onboarding */
    const struct sztp_owner_kit *kit; /* with signed settings: the owner chain's, or NULL */
    struct store_sztp_voucher reusable; /* id 0: none */
};

struct sztp_policy {
    unsigned voucher_lifetime;     /* seconds, of a nonceless voucher */
};

struct sztp_decision {
    bool is_signed;
    bool onboarding;
    bool voucher;                  /* an ownership voucher goes with it */
    bool reuse_voucher;            /* facts.reusable, as it is */
    time_t created_on;
    time_t expires_on;             /* 0: nonced, no expiry */
};

/* RFC 8572 §4.4, §3.3: what the device gets, or why not. Pure. */
struct sztp_refusal sztp_decide(struct arena *a, const struct sztp_claim *claim,
                                const struct sztp_facts *facts, const struct sztp_policy *policy,
                                time_t now, struct sztp_decision *d);

/* Is this conveyed information (JSON or XML, as validated when stored)
 * onboarding information rather than a redirect? By its top-level node. */
bool sztp_is_onboarding(struct arena *a, const char *text, size_t len);

/* ---- report-progress (decide.c) ---- */

struct sztp_progress_claim {
    const char *type;
    const char *message;
    struct store_sztp_host_key *host_keys;
    size_t host_key_count;         /* as sent: may exceed SZTP_MAX_HOST_KEYS */
    const char **trust_anchors;    /* base64 as sent; normalized by the check */
    size_t trust_anchor_count;     /* as sent: may exceed SZTP_MAX_TRUST_ANCHORS */
};

/* The input's bounds (counts, sizes, each trust anchor a CMS certs-only
 * structure); rewrites trust_anchors to canonical base64. Pure. */
struct sztp_refusal sztp_progress_check(struct arena *a, struct sztp_progress_claim *p);

#endif
