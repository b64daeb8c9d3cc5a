#ifndef MASAD_BRSKI_INTERNAL_H
#define MASAD_BRSKI_INTERNAL_H
/* Folder-private to brski/. */
#include <openssl/x509.h>
#include <stdbool.h>

#include "brski/brski.h"
#include "voucher/voucher.h"

/* One BRSKI call in progress. */
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

/* Answers status with a text/plain sentence and records the refusal in the
 * audit log (in its own transaction, after rolling back). Returns false. */
bool brski_refuse(struct brski_call *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Every check of RFC 8995 §5.5 on the request in c->req that does not
 * need the database. false: the refusal is answered. */
bool brski_check_request(struct brski_call *c, struct brski_claim *claim, const char *answer_type);

/* The registered domain certificate the registrar's chain reaches, its
 * owner's registrar_auth enforced. false: a refusal or a database error was
 * answered. */
bool brski_find_domain(struct brski_call *c, const struct brski_claim *claim,
                       struct brski_domain *domain);

#endif
