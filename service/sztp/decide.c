/* The SZTP bootstrap server's choices, pure: no I/O, no clock (the time
 * comes in). tests/unit/test_sztp_decide.c covers every branch. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/encoding.h"
#include "common/json.h"
#include "crypto/crypto.h"
#include "sztp/sztp_internal.h"

const char SZTP_DENIED[] = "the device could not be authenticated: present an IDevID client "
                           "certificate or HTTP Basic credentials (serial number and password)";

struct sztp_refusal sztp_refusal(struct arena *a, int status, const char *type, const char *tag,
                                 const char *fmt, ...)
{
    char sentence[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sentence, sizeof(sentence), fmt, ap);
    va_end(ap);
    return (struct sztp_refusal){{status, arena_strdup(a, sentence), "sztp.refuse"}, type, tag};
}

static struct sztp_refusal denied(struct arena *a)
{
    return sztp_refusal(a, 401, "protocol", "access-denied", "%s", SZTP_DENIED);
}

struct sztp_refusal sztp_negotiate(struct arena *a, const char *content_type, size_t body_len,
                                   enum sztp_format *format)
{
    *format = SZTP_JSON;
    if (content_type && media_type_is(content_type, "application/yang-data+xml"))
        *format = SZTP_XML;
    /* RFC 8040 §5.2; deployed agents also send application/json */
    else if (body_len && (!content_type || !(media_type_is(content_type, "application/yang-data+json") ||
                                             media_type_is(content_type, "application/json"))))
        return sztp_refusal(a, 415, "protocol", "invalid-value",
                            "the input must be application/yang-data+json or application/yang-data+xml");
    if (body_len > SZTP_MAX_BODY)
        return sztp_refusal(a, 413, "protocol", "too-big", "the input is larger than %d bytes",
                            SZTP_MAX_BODY);
    return sztp_none();
}

struct sztp_refusal sztp_auth_decide(struct arena *a, const struct sztp_auth *auth,
                                     const char **serial)
{
    *serial = NULL;
    /* docs/sztp.md: Basic that names the certificate's own serial, for a
     * device without a password, claims nothing and counts as absent */
    bool basic = auth->basic_present &&
                 !(auth->by_cert && !auth->by_basic && auth->basic_adds_nothing);
    /* one sentence for every failure: nothing tells whether a serial exists */
    if (auth->bad_cert || (basic && !auth->by_basic) || (!auth->by_cert && !auth->by_basic) ||
        (auth->by_cert && auth->by_basic && strcmp(auth->by_cert, auth->by_basic)))
        return denied(a);
    *serial = auth->by_cert ? auth->by_cert : auth->by_basic;
    return sztp_none();
}

bool sztp_is_onboarding(struct arena *a, const char *text, size_t len)
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t'))
        i++;
    if (i < len && text[i] == '{') {
        struct json_value *doc;
        struct masad_error err;
        return json_parse(a, text, len, 64, &doc, &err) == 0 && doc->type == JSON_OBJECT &&
               doc->count > 0 && !strcmp(doc->keys[0], "ietf-sztp-conveyed-info:onboarding-information");
    }
    size_t name = i + 1 < len ? strcspn(text + i + 1, " \t\r\n/>") : 0;
    const char *local = name ? memchr(text + i + 1, ':', name) : NULL;
    local = local ? local + 1 : text + i + 1;
    return name && !strncmp(local, "onboarding-information", 22);
}

struct sztp_refusal sztp_decide(struct arena *a, const struct sztp_claim *claim,
                                const struct sztp_facts *facts, const struct sztp_policy *policy,
                                time_t now, struct sztp_decision *d)
{
    const struct store_sztp_owner *o = &facts->owner;
    *d = (struct sztp_decision){0};
    if (!o->device_found) /* an IDevID of a device the factory never registered */
        return denied(a);
    /* RFC 8572 §4.4: a 404 moves the device on to its next bootstrap source */
    if (!o->owner)
        return sztp_refusal(a, 404, "application", "invalid-value",
                            "the device has no owner: no bootstrapping data here");
    bool has_signed = o->signed_conveyed.data != NULL;
    if (!o->conveyed && !has_signed)
        return sztp_refusal(a, 404, "application", "invalid-value",
                            "the device's owner has no SZTP settings");
    bool unsigned_onboarding = o->conveyed && facts->conveyed_onboarding;
    if (claim->prefer_signed && !has_signed && unsigned_onboarding)
        return sztp_refusal(a, 404, "application", "invalid-value",
                            "the device prefers signed data and only unsigned onboarding "
                            "information exists (RFC 8572 §4.4)");
    d->is_signed = has_signed && (claim->prefer_signed || !o->conveyed);
    d->onboarding = d->is_signed ? o->signed_onboarding : unsigned_onboarding;
    if (!d->is_signed)
        return sztp_none();
    if (!facts->kit)
        return sztp_refusal(a, 500, "application", "operation-failed",
                            "the owner certificate is unusable");
    /* RFC 8572 §3.3: an ownership voucher pinned to the owner's last
     * certificate, with the device's nonce (made now), or nonceless and
     * reused until a quarter of its lifetime remains */
    d->voucher = true;
    d->created_on = now;
    if (claim->nonce)
        return sztp_none();
    d->expires_on = now + (time_t)policy->voucher_lifetime;
    d->reuse_voucher = facts->reusable.id != 0 &&
                       facts->reusable.expires_on > now + (time_t)(policy->voucher_lifetime / 4);
    return sztp_none();
}

struct sztp_refusal sztp_progress_check(struct arena *a, struct sztp_progress_claim *p)
{
    if (p->host_key_count > SZTP_MAX_HOST_KEYS)
        return sztp_refusal(a, 400, "application", "invalid-value",
                            "invalid input: more than %d ssh-host-key entries", SZTP_MAX_HOST_KEYS);
    for (size_t i = 0; i < p->host_key_count; i++) {
        const struct store_sztp_host_key *k = &p->host_keys[i];
        if (!k->algorithm || !k->key_data || strlen(k->algorithm) > SZTP_MAX_ALGORITHM ||
            strlen(k->key_data) > SZTP_MAX_KEY_DATA)
            return sztp_refusal(a, 400, "application", "invalid-value",
                                "invalid input: ssh-host-key %zu is larger than %d bytes of "
                                "algorithm or %d of key-data",
                                i + 1, SZTP_MAX_ALGORITHM, SZTP_MAX_KEY_DATA);
    }
    if (p->trust_anchor_count > SZTP_MAX_TRUST_ANCHORS)
        return sztp_refusal(a, 400, "application", "invalid-value",
                            "invalid input: more than %d trust-anchor-cert entries",
                            SZTP_MAX_TRUST_ANCHORS);
    for (size_t i = 0; i < p->trust_anchor_count; i++) {
        const char *b64 = p->trust_anchors[i];
        size_t len = 0;
        unsigned char *der = b64 && strlen(b64) <= SZTP_MAX_ANCHOR_CMS
                                 ? base64_decode(a, b64, strlen(b64), &len)
                                 : NULL;
        char why[256] = "is larger than 64 KiB or not base64";
        if (!der || crypto_certs_only_check(der, len, SZTP_MAX_ANCHOR_CERTS, why) != 0)
            /* RFC 8572 §7.3: a CMS certs-only structure (RFC 8572 §3.2) */
            return sztp_refusal(a, 400, "application", "invalid-value",
                                "invalid input: trust-anchor-cert %zu %s (a CMS certs-only "
                                "structure is expected, RFC 8572 §7.3)", i + 1, why);
        p->trust_anchors[i] = base64_encode(a, der, len);
    }
    return sztp_none();
}
