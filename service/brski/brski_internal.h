#ifndef MASAD_BRSKI_INTERNAL_H
#define MASAD_BRSKI_INTERNAL_H
/*
 * Folder-private to brski/. A request goes read → facts → decide → commit:
 * brski_check_request reads and verifies it into a claim; the store gives
 * the facts; brski_decide (pure: no I/O, no clock) turns claim, facts,
 * policy and the time into a decision or a refusal; the commit signs and
 * records voucher and audit event in one transaction. Every refusal is a
 * value (common/refusal.h) that brski_render answers and records.
 */
#include <openssl/x509.h>
#include <stdbool.h>
#include <time.h>

#include "brski/brski.h"
#include "common/config.h"
#include "common/refusal.h"
#include "store/brski.h"
#include "voucher/voucher.h"

/* One BRSKI call in progress: what its refusal's audit event names. */
struct brski_call {
    struct job_ctx *ctx;
    struct arena *a;
    const struct masad_request *req;
    struct masad_response *res;
    const char *action;            /* audit action of a refusal */
    const char *actor;             /* the registrar (certificate subject) once known */
    const char *serial;            /* once known */
    const char *owner;             /* once known */
    bool registrar_known;          /* its chain reached a registered domain certificate */
    bool base64;                   /* the request came as base64 text: answer so */
    X509 *tls;                     /* the TLS client certificate, once read (or NULL) */
    bool tls_read;
};

/* What a registrar voucher-request establishes once every check passed. */
struct brski_claim {
    struct voucher_request rvr, pvr;
    const unsigned char *rvr_der;
    size_t rvr_der_len;
    X509 *registrar;               /* the RVR signer */
    STACK_OF(X509) *path;          /* registrar upward through the RVR's certificates */
    STACK_OF(X509) *carried;       /* every certificate the RVR carries */
    X509 *idevid;
    const char *serial;            /* from the IDevID (RFC 8995 §2.3.1) */
    bool proximity;                /* RFC 8995 §5.5.5 */
};

/* The domain (owner) a registrar's chain reaches, if any
 * (docs/management-api.md, Create an owner). */
struct brski_domain {
    const char *owner;             /* NULL: no registered domain certificate */
    X509 *cert;                    /* the matched domain certificate */
    const char *registrar_auth;    /* the owner's: "any", "tls-equals-signer", "tls-chains-to-domain" */
    bool pin_registrar;            /* the owner's pinning: the registrar's own certificate */
};

/* What the database says about the device a claim names. */
struct brski_facts {
    bool device_known;
    const char *current_owner;     /* NULL: none recorded */
    struct brski_domain domain;
    /* RFC 8995 §5.5.1: the device's last BRSKI voucher */
    bool last_found;
    const char *last_owner;
    const char *last_assertion;
    unsigned char last_domain_cert_sha256[32];
    bool ownership_changed_since_last;
    const char *ownership_stamp;   /* what the commit checks is unchanged */
};

/* The configuration a decision depends on. */
struct brski_policy {
    enum brski_unowned unowned;
    unsigned nonceless_lifetime;   /* seconds */
};

/* What the MASA decided to issue. */
struct brski_decision {
    const char *assertion;
    X509 *pinned;
    const char *owner;             /* the owner the voucher is for, or NULL (TOFU) */
    const char *basis;             /* for the audit event: "owner", "renewal", "unowned-logged" */
    time_t expires_on;             /* 0: never (a nonced voucher) */
};

/* A refusal of c's action with a formatted sentence (in c's arena). */
struct refusal brski_refusal(struct brski_call *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Answers r with a text/plain sentence and records it in the audit log (in
 * its own transaction, after rolling back the caller's). */
void brski_render(struct brski_call *c, const struct refusal *r);

/* Every check of RFC 8995 §5.5 on the request in c->req that does not
 * need the database. */
struct refusal brski_check_request(struct brski_call *c, struct brski_claim *claim,
                                   const char *answer_type);

/* The registrar's path as the store looks domains up: each certificate's
 * SHA-256 and SPKI SHA-256, and the RFC 2253 issuer of its top. */
struct brski_path {
    int n;
    unsigned char (*cert)[32];
    unsigned char (*spki)[32];
    const char *issuer;
};
void brski_path_digests(struct arena *a, const struct brski_claim *claim, struct brski_path *out);

/* Of the domain certificate rows the store found for path (by SPKI, else
 * by the top's issuer), the one the registrar's chain reaches (none:
 * domain->owner NULL), its owner's registrar_auth enforced. */
struct refusal brski_match_domain(struct brski_call *c, const struct brski_claim *claim,
                                  const struct brski_path *path,
                                  const struct store_brski_domain_cert *rows, size_t count,
                                  bool by_spki, struct brski_domain *domain);

/* The same, looking the rows up. */
struct refusal brski_find_domain(struct brski_call *c, const struct brski_claim *claim,
                                 struct brski_domain *domain);

/* RFC 8995 §5.5: who owns the device decides (docs/brski.md). Pure: no
 * I/O, no clock; sentences go in a. */
struct refusal brski_decide(struct arena *a, const struct brski_claim *claim,
                            const struct brski_facts *facts, const struct brski_policy *policy,
                            time_t now, struct brski_decision *d);

/* ---- the audit log (auditlog.c) ---- */

struct brski_log_event {
    const char *date, *domain_id, *nonce, *assertion;
    unsigned long truncated;       /* older duplicates folded into this one */
    bool kept;
};

struct brski_truncation {
    unsigned long nonced, nonceless, arbitrary;
};

/* RFC 8995 §5.8.1: per domain, only the newest few nonced and nonceless
 * events; beyond a total, the oldest go. ev is newest first; each event's
 * kept and truncated are set. */
void brski_truncate_log(struct brski_log_event *ev, size_t n, const struct config *cfg,
                        struct brski_truncation *t);

#endif
