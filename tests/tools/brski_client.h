#ifndef MASAD_TESTS_BRSKI_CLIENT_H
#define MASAD_TESTS_BRSKI_CLIENT_H
/*
 * The registrar side of BRSKI (RFC 8995) for tests and smoke tests: builds a
 * pledge voucher-request (PVR) and the registrar voucher-request (RVR) that
 * carries it, posts it to a MASA, and verifies the voucher (RFC 8366) that
 * comes back. Files are PEM; certificates and keys are read anew on each call.
 *
 * Errors: functions that take err/errlen return -1 and leave one sentence in
 * err, NUL-terminated and truncated to errlen (err may be NULL with errlen 0).
 * Threads: calls are independent; brski_last_nonce(), brski_last_serial()
 * and brski_last_post_error() answer for the calling thread.
 * libcurl: call curl_global_init() once before using brski_post() from
 * several threads.
 */
#include <stdbool.h>
#include <stddef.h>

/* How idevid-issuer is written (RFC 8366 §5.3 wants the AKI; deployed
 * registrars send the issuer Name, as DER or as printable text). */
enum brski_issuer_form {
    BRSKI_ISSUER_AKI,             /* the IDevID's Authority Key Identifier keyIdentifier */
    BRSKI_ISSUER_NAME_DER,        /* the IDevID's issuer Name, DER, base64 */
    BRSKI_ISSUER_NAME_TEXT,       /* X509_NAME_print_ex(XN_FLAG_ONELINE), as a plain string */
};

struct brski_client_opts {
    const char *pledge_cert;      /* PEM: IDevID certificate first (chain may follow) */
    const char *pledge_key;       /* PEM private key; unused when pvr_signer_key is set */
    const char *registrar_cert;   /* PEM: registrar certificate, then its chain */
    const char *registrar_key;
    /* PVR */
    const char *pvr_serial;       /* NULL: the IDevID subject's serialNumber */
    bool nonceless;               /* no nonce in the PVR; in the RVR only rvr_nonce */
    const unsigned char *nonce;   /* NULL with !nonceless: 16 random bytes */
    size_t nonce_len;             /* 0..BRSKI_NONCE_MAX (0: an empty nonce, for refusal tests) */
    bool no_proximity;            /* leave proximity-registrar-cert out of the PVR */
    const char *proximity_cert;   /* PEM file to use as proximity-registrar-cert instead */
    /* RVR */
    const char *rvr_serial;       /* NULL: the PVR's */
    const unsigned char *rvr_nonce; /* non-NULL: this nonce in the RVR instead of the PVR's */
    size_t rvr_nonce_len;         /* 0..BRSKI_NONCE_MAX */
    bool idevid_issuer;           /* put idevid-issuer (the IDevID's AKI keyIdentifier) in the RVR */
    const unsigned char *idevid_issuer_value; /* non-NULL: these bytes instead (implies idevid_issuer),
                                   * base64, or as they are with BRSKI_ISSUER_NAME_TEXT */
    size_t idevid_issuer_len;
    /* deployed-client quirks masad must tolerate (RFC 8995 Appendix C style) */
    bool econtent_id_data;        /* eContentType id-data (1.2.840.113549.1.7.1) for both */
    bool nonce_base64url;         /* nonces (PVR and RVR) as unpadded base64url text */
    bool created_on_date_only;    /* created-on (PVR and RVR) as "YYYY-MM-DD" */
    bool voucher_root;            /* root "ietf-voucher:voucher" in the PVR and the RVR */
    enum brski_issuer_form idevid_issuer_form; /* with idevid_issuer */
    bool serial_case;             /* the PVR's serial-number in the other letter case (the RVR's
                                   * stays the IDevID's) */
    bool registrar_omits_nonce;   /* the RVR leaves the PVR's nonce out (RFC 8995 §5.5 MAY) */
    /* faults for refusal tests */
    bool corrupt_rvr_signature;   /* flip a byte of the RVR's signature value */
    bool corrupt_pvr_signature;
    const char *pvr_signer_cert;  /* sign the PVR with this cert (+chain) and key instead; */
    const char *pvr_signer_key;   /* serial and AKI still come from pledge_cert */
};

#define BRSKI_NONCE_MAX 256
#define BRSKI_VOUCHER_CMS "application/voucher-cms+json"
#define BRSKI_ID_CT_VOUCHER "1.2.840.113549.1.9.16.1.40" /* id-ct-animaJSONVoucher */

/* The RVR as DER CMS in *der (malloc'd, the caller frees). On failure returns
 * -1 with a sentence in err. */
int brski_build_rvr(const struct brski_client_opts *o, unsigned char **der, size_t *len,
                    char *err, size_t errlen);

/* The nonce that was put in the PVR by this thread's last brski_build_rvr()
 * (so a caller can compare it with the voucher's); NULL with *len 0 when it
 * had none. Valid until the thread's next build. */
const unsigned char *brski_last_nonce(size_t *len);

/* The nonce's text as the PVR wrote it (what a pledge compares the
 * voucher's with), or NULL. Valid until the thread's next build. */
const char *brski_last_nonce_text(void);

/* The serial-number that was put in the PVR by this thread's last build
 * ("" before any). Valid until the thread's next build. */
const char *brski_last_serial(void);

/* Verifies a voucher CMS against the CA file (purpose any), checks eContentType is
 * id-ct-animaJSONVoucher, and gives its JSON content (malloc'd, NUL-terminated). */
int brski_verify_voucher(const unsigned char *der, size_t len, const char *masa_ca_file,
                         char **json, char *err, size_t errlen);

/* Standard padded base64 (RFC 4648 §4) of in, malloc'd; NULL when out of memory. */
char *brski_base64(const unsigned char *in, size_t len);

/* A body as EST sends it: base64 in lines of 64 characters ending CRLF, malloc'd. */
char *brski_base64_lines(const unsigned char *in, size_t len);
/* Decodes base64 text, line breaks allowed; malloc'd, NULL when it is not base64. */
unsigned char *brski_unbase64(const unsigned char *text, size_t len, size_t *out_len);

/* The string value of leaf in {"ietf-voucher:voucher": {...}} (malloc'd), or
 * NULL when json does not parse, the leaf is absent or is not a string. */
char *brski_voucher_leaf(const char *json, const char *leaf);

/* POSTs body to url (path included) with Content-Type/Accept application/voucher-cms+json
 * (accept NULL: no Accept header; content_type NULL: the default), TLS trusting tls_ca
 * (NULL: the system's), optional client certificate; returns the HTTP status (0 on
 * transport failure, see brski_last_post_error()), body malloc'd (NUL-terminated
 * beyond *answer_len), *answer_content_type malloc'd or NULL when the answer had none.
 * answer_content_type may be NULL when the caller does not want it. */
long brski_post(const char *url, const char *tls_ca, const char *client_cert, const char *client_key,
                const char *content_type, const char *accept, const unsigned char *body, size_t len,
                unsigned char **answer, size_t *answer_len, char **answer_content_type);

/* Why this thread's last brski_post() returned 0 ("" otherwise). */
const char *brski_last_post_error(void);

#endif
