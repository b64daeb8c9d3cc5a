/* The SZTP bootstrap server's pure choices (service/sztp/decide.c): every
 * branch, without h2o, PostgreSQL or an HSM. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <string.h>

#include "common/arena.h"
#include "common/encoding.h"
#include "crypto/crypto.h"
#include "sztp/sztp_internal.h"

static struct arena *a;
static void setup(void) { a = arena_new(); }
static void teardown(void) { arena_free(a); }

TestSuite(sztp_decide, .init = setup, .fini = teardown);

static const unsigned char CERT[] = {0x30, 0x03, 0x02, 0x01, 0x01};
static struct store_bytes chain[] = {{CERT, sizeof(CERT)}};
static const struct sztp_owner_kit KIT; /* decide() only asks whether there is one */
static const unsigned char SIGNED[] = {0x30, 0x00};
static const unsigned char NONCE[] = {1, 2, 3, 4, 5, 6, 7, 8};
#define NOW ((time_t)1800000000)
#define LIFETIME 86400u

static void expect_refusal(struct sztp_refusal r, int status, const char *type, const char *tag,
                           const char *sentence)
{
    cr_assert_eq(r.r.status, status, "%d: %s", r.r.status, r.r.sentence ? r.r.sentence : "");
    cr_assert_str_eq(r.type, type);
    cr_assert_str_eq(r.tag, tag);
    cr_assert_str_eq(r.r.sentence, sentence);
    cr_assert_str_eq(r.r.action, "sztp.refuse");
}

/* An owner with unsigned conveyed information (onboarding or not), signed
 * (onboarding or not) or neither. */
static struct sztp_facts owner(bool with_unsigned, bool unsigned_onboarding, bool with_signed,
                               bool signed_onboarding)
{
    struct sztp_facts f = {0};
    f.owner.device_found = true;
    f.owner.owner = "acme";
    f.owner.conveyed = with_unsigned ? "{}" : NULL;
    f.conveyed_onboarding = unsigned_onboarding;
    if (with_signed) {
        f.owner.signed_conveyed = (struct store_bytes){SIGNED, sizeof(SIGNED)};
        f.owner.signed_onboarding = signed_onboarding;
        f.owner.certs = chain;
        f.owner.cert_count = 1;
        f.kit = &KIT;
    }
    return f;
}

static struct sztp_refusal decide(const struct sztp_claim *c, const struct sztp_facts *f,
                                  struct sztp_decision *d)
{
    struct sztp_policy p = {LIFETIME};
    return sztp_decide(a, c, f, &p, NOW, d);
}

Test(sztp_decide, unknown_device_is_denied)
{
    struct sztp_claim c = {.serial = "SN1"};
    struct sztp_facts f = {0};
    struct sztp_decision d;
    expect_refusal(decide(&c, &f, &d), 401, "protocol", "access-denied", SZTP_DENIED);
}

Test(sztp_decide, no_owner_is_404)
{
    struct sztp_claim c = {.serial = "SN1"};
    struct sztp_facts f = owner(true, false, false, false);
    f.owner.owner = NULL;
    struct sztp_decision d;
    expect_refusal(decide(&c, &f, &d), 404, "application", "invalid-value",
                   "the device has no owner: no bootstrapping data here");
}

Test(sztp_decide, owner_without_settings_is_404)
{
    struct sztp_claim c = {.serial = "SN1"};
    struct sztp_facts f = owner(false, false, false, false);
    struct sztp_decision d;
    expect_refusal(decide(&c, &f, &d), 404, "application", "invalid-value",
                   "the device's owner has no SZTP settings");
}

Test(sztp_decide, signed_preferred_but_only_unsigned_onboarding_is_404)
{
    struct sztp_claim c = {.serial = "SN1", .prefer_signed = true};
    struct sztp_facts f = owner(true, true, false, false);
    struct sztp_decision d;
    expect_refusal(decide(&c, &f, &d), 404, "application", "invalid-value",
                   "the device prefers signed data and only unsigned onboarding information "
                   "exists (RFC 8572 §4.4)");
}

Test(sztp_decide, signed_preferred_and_only_unsigned_redirect_gets_it_unsigned)
{
    struct sztp_claim c = {.serial = "SN1", .prefer_signed = true};
    struct sztp_facts f = owner(true, false, false, false);
    struct sztp_decision d;
    cr_assert_eq(decide(&c, &f, &d).r.status, 0);
    cr_assert_not(d.is_signed);
    cr_assert_not(d.onboarding);
    cr_assert_not(d.voucher);
}

Test(sztp_decide, unsigned_onboarding_when_not_preferring_signed)
{
    struct sztp_claim c = {.serial = "SN1"};
    struct sztp_facts f = owner(true, true, true, false);
    struct sztp_decision d;
    cr_assert_eq(decide(&c, &f, &d).r.status, 0);
    cr_assert_not(d.is_signed, "unsigned exists and signed was not asked for");
    cr_assert(d.onboarding);
    cr_assert_not(d.voucher);
}

Test(sztp_decide, signed_when_preferred_with_a_nonced_voucher)
{
    struct sztp_claim c = {.serial = "SN1", .prefer_signed = true, .nonce = NONCE, .nonce_len = sizeof(NONCE)};
    struct sztp_facts f = owner(true, false, true, true);
    f.reusable = (struct store_sztp_voucher){7, NOW + LIFETIME, {SIGNED, sizeof(SIGNED)}};
    struct sztp_decision d;
    cr_assert_eq(decide(&c, &f, &d).r.status, 0);
    cr_assert(d.is_signed);
    cr_assert(d.onboarding, "what the signed data holds, not the unsigned");
    cr_assert(d.voucher);
    cr_assert_not(d.reuse_voucher, "a nonced voucher is never reused");
    cr_assert_eq(d.created_on, NOW);
    cr_assert_eq(d.expires_on, 0, "RFC 8366: a nonced voucher does not expire");
}

Test(sztp_decide, signed_when_only_signed_exists)
{
    struct sztp_claim c = {.serial = "SN1"};
    struct sztp_facts f = owner(false, false, true, false);
    struct sztp_decision d;
    cr_assert_eq(decide(&c, &f, &d).r.status, 0);
    cr_assert(d.is_signed);
    cr_assert_not(d.onboarding);
    cr_assert(d.voucher);
    cr_assert_not(d.reuse_voucher, "none to reuse");
    cr_assert_eq(d.expires_on, NOW + LIFETIME);
}

Test(sztp_decide, signed_without_owner_certificate_is_500)
{
    struct sztp_claim c = {.serial = "SN1"};
    struct sztp_facts f = owner(false, false, true, false);
    f.kit = NULL; /* none of its certificates parses */
    struct sztp_decision d;
    expect_refusal(decide(&c, &f, &d), 500, "application", "operation-failed",
                   "the owner certificate is unusable");
}

Test(sztp_decide, nonceless_voucher_reused_until_a_quarter_of_its_lifetime_remains)
{
    struct sztp_claim c = {.serial = "SN1"};
    struct sztp_facts f = owner(false, false, true, false);
    struct sztp_decision d;
    f.reusable = (struct store_sztp_voucher){7, NOW + LIFETIME / 4 + 1, {SIGNED, sizeof(SIGNED)}};
    cr_assert_eq(decide(&c, &f, &d).r.status, 0);
    cr_assert(d.reuse_voucher);
    f.reusable.expires_on = NOW + LIFETIME / 4;
    cr_assert_eq(decide(&c, &f, &d).r.status, 0);
    cr_assert_not(d.reuse_voucher, "a quarter left: a new one");
    cr_assert_eq(d.expires_on, NOW + LIFETIME);
}

/* ---- media type and size ---- */

Test(sztp_decide, negotiate_media_types)
{
    enum sztp_format f;
    cr_assert_eq(sztp_negotiate(a, "application/yang-data+xml; charset=utf-8", 10, &f).r.status, 0);
    cr_assert_eq(f, SZTP_XML);
    cr_assert_eq(sztp_negotiate(a, "application/yang-data+json", 10, &f).r.status, 0);
    cr_assert_eq(f, SZTP_JSON);
    cr_assert_eq(sztp_negotiate(a, "Application/JSON", 10, &f).r.status, 0, "deployed agents");
    cr_assert_eq(f, SZTP_JSON);
    cr_assert_eq(sztp_negotiate(a, NULL, 0, &f).r.status, 0, "no body, no type needed");
    cr_assert_eq(f, SZTP_JSON);
    cr_assert_eq(sztp_negotiate(a, "text/plain", 0, &f).r.status, 0, "no body, type ignored");
    const char *want = "the input must be application/yang-data+json or application/yang-data+xml";
    expect_refusal(sztp_negotiate(a, "text/plain", 1, &f), 415, "protocol", "invalid-value", want);
    cr_assert_eq(f, SZTP_JSON, "the error is answered in JSON");
    expect_refusal(sztp_negotiate(a, NULL, 1, &f), 415, "protocol", "invalid-value", want);
}

Test(sztp_decide, negotiate_body_bound)
{
    enum sztp_format f;
    cr_assert_eq(sztp_negotiate(a, "application/yang-data+json", SZTP_MAX_BODY, &f).r.status, 0);
    expect_refusal(sztp_negotiate(a, "application/yang-data+xml", SZTP_MAX_BODY + 1, &f), 413,
                   "protocol", "too-big", "the input is larger than 262144 bytes");
    cr_assert_eq(f, SZTP_XML, "the error is answered in the request's encoding");
}

/* ---- authentication ---- */

static const char *auth(struct sztp_auth x, int status)
{
    const char *serial = "unset";
    struct sztp_refusal r = sztp_auth_decide(a, &x, &serial);
    if (status)
        expect_refusal(r, status, "protocol", "access-denied", SZTP_DENIED);
    else
        cr_assert_eq(r.r.status, 0, "%s", r.r.sentence);
    return serial;
}

Test(sztp_decide, authentication)
{
    cr_assert_str_eq(auth((struct sztp_auth){.by_cert = "A"}, 0), "A");
    cr_assert_str_eq(auth((struct sztp_auth){.basic_present = true, .by_basic = "B"}, 0), "B");
    cr_assert_str_eq(auth((struct sztp_auth){"A", false, true, "A", false}, 0), "A", "both agree");
    cr_assert_null(auth((struct sztp_auth){0}, 401), "nothing presented");
    cr_assert_null(auth((struct sztp_auth){.bad_cert = true}, 401));
    cr_assert_null(auth((struct sztp_auth){NULL, true, true, "B", false}, 401),
                   "a bad certificate is refused even with a good password");
    cr_assert_null(auth((struct sztp_auth){.basic_present = true}, 401), "wrong password");
    cr_assert_null(auth((struct sztp_auth){"A", false, true, "B", false}, 401), "two identities");
    cr_assert_null(auth((struct sztp_auth){"A", false, true, NULL, false}, 401),
                   "a wrong password next to a good certificate");
    cr_assert_str_eq(auth((struct sztp_auth){"A", false, true, NULL, true}, 0), "A",
                     "Basic naming the certificate's serial without a password adds nothing");
}

/* ---- conveyed information kind ---- */

static bool onboarding(const char *text) { return sztp_is_onboarding(a, text, strlen(text)); }

Test(sztp_decide, onboarding_or_redirect)
{
    cr_assert(onboarding(" {\"ietf-sztp-conveyed-info:onboarding-information\": {}}"));
    cr_assert_not(onboarding("{\"ietf-sztp-conveyed-info:redirect-information\": {}}"));
    cr_assert_not(onboarding("{}"));
    cr_assert_not(onboarding("[1]"));
    cr_assert_not(onboarding("{not json"));
    cr_assert(onboarding("\n<onboarding-information xmlns=\"urn:x\"/>"));
    cr_assert(onboarding("<ci:onboarding-information xmlns:ci=\"urn:x\"></ci:onboarding-information>"));
    cr_assert_not(onboarding("<redirect-information xmlns=\"urn:x\"/>"));
    cr_assert_not(onboarding(""));
}

/* ---- report-progress bounds ---- */

/* A self-signed certificate with this serial number, by one key. */
static X509 *make_cert(long serial)
{
    static EVP_PKEY *key;
    if (!key)
        key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"anchor", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_sign(x, key, EVP_sha256());
    return x;
}

static const char *certs_only_b64(void)
{
    STACK_OF(X509) *s = sk_X509_new_null();
    sk_X509_push(s, make_cert(1));
    unsigned char *der;
    size_t len;
    cr_assert_eq(crypto_certs_only(s, a, &der, &len), 0);
    sk_X509_pop_free(s, X509_free);
    return base64_encode(a, der, len);
}

static struct sztp_progress_claim progress(size_t keys, size_t anchors, const char *anchor)
{
    struct sztp_progress_claim p = {.type = "bootstrap-complete", .message = "done"};
    p.host_keys = arena_alloc(a, (keys + 1) * sizeof(*p.host_keys));
    for (size_t i = 0; i < keys; i++)
        p.host_keys[i] = (struct store_sztp_host_key){"ssh-ed25519", "AAAA"};
    p.host_key_count = keys;
    p.trust_anchors = arena_alloc(a, (anchors + 1) * sizeof(*p.trust_anchors));
    for (size_t i = 0; i < anchors; i++)
        p.trust_anchors[i] = anchor;
    p.trust_anchor_count = anchors;
    return p;
}

Test(sztp_decide, progress_within_bounds)
{
    const char *anchor = certs_only_b64();
    struct sztp_progress_claim p = progress(SZTP_MAX_HOST_KEYS, SZTP_MAX_TRUST_ANCHORS, anchor);
    cr_assert_eq(sztp_progress_check(a, &p).r.status, 0);
    cr_assert_str_eq(p.trust_anchors[SZTP_MAX_TRUST_ANCHORS - 1], anchor);
    p = progress(0, 0, NULL);
    cr_assert_eq(sztp_progress_check(a, &p).r.status, 0);
}

Test(sztp_decide, progress_counts_bounded)
{
    struct sztp_progress_claim p = progress(SZTP_MAX_HOST_KEYS + 1, 0, NULL);
    expect_refusal(sztp_progress_check(a, &p), 400, "application", "invalid-value",
                   "invalid input: more than 16 ssh-host-key entries");
    p = progress(0, SZTP_MAX_TRUST_ANCHORS + 1, certs_only_b64());
    expect_refusal(sztp_progress_check(a, &p), 400, "application", "invalid-value",
                   "invalid input: more than 8 trust-anchor-cert entries");
}

Test(sztp_decide, progress_host_key_sizes_bounded)
{
    const char *sentence = "invalid input: ssh-host-key 2 is larger than 64 bytes of algorithm "
                           "or 16384 of key-data";
    struct sztp_progress_claim p = progress(2, 0, NULL);
    char *alg = arena_alloc(a, SZTP_MAX_ALGORITHM + 2);
    memset(alg, 'a', SZTP_MAX_ALGORITHM + 1);
    alg[SZTP_MAX_ALGORITHM + 1] = 0;
    p.host_keys[1].algorithm = alg;
    expect_refusal(sztp_progress_check(a, &p), 400, "application", "invalid-value", sentence);
    alg[SZTP_MAX_ALGORITHM] = 0;
    cr_assert_eq(sztp_progress_check(a, &p).r.status, 0, "64 bytes are allowed");
    char *data = arena_alloc(a, SZTP_MAX_KEY_DATA + 2);
    memset(data, 'A', SZTP_MAX_KEY_DATA + 1);
    data[SZTP_MAX_KEY_DATA + 1] = 0;
    p.host_keys[1].key_data = data;
    expect_refusal(sztp_progress_check(a, &p), 400, "application", "invalid-value", sentence);
    p.host_keys[1].key_data = NULL;
    expect_refusal(sztp_progress_check(a, &p), 400, "application", "invalid-value", sentence);
}

Test(sztp_decide, progress_trust_anchor_must_be_certs_only)
{
    struct sztp_progress_claim p = progress(0, 2, certs_only_b64());
    p.trust_anchors[1] = "not base64!";
    expect_refusal(sztp_progress_check(a, &p), 400, "application", "invalid-value",
                   "invalid input: trust-anchor-cert 2 is larger than 64 KiB or not base64 "
                   "(a CMS certs-only structure is expected, RFC 8572 §7.3)");
    char *big = arena_alloc(a, SZTP_MAX_ANCHOR_CMS + 5);
    memset(big, 'A', SZTP_MAX_ANCHOR_CMS + 4);
    big[SZTP_MAX_ANCHOR_CMS + 4] = 0;
    p.trust_anchors[1] = big;
    expect_refusal(sztp_progress_check(a, &p), 400, "application", "invalid-value",
                   "invalid input: trust-anchor-cert 2 is larger than 64 KiB or not base64 "
                   "(a CMS certs-only structure is expected, RFC 8572 §7.3)");
    p.trust_anchors[1] = "MAA="; /* an empty SEQUENCE: base64, not CMS */
    struct sztp_refusal r = sztp_progress_check(a, &p);
    cr_assert_eq(r.r.status, 400);
    cr_assert(strstr(r.r.sentence, "invalid input: trust-anchor-cert 2 ") == r.r.sentence, "%s",
              r.r.sentence);
    cr_assert(strstr(r.r.sentence, "(a CMS certs-only structure is expected, RFC 8572 §7.3)"));
}

/* ---- the per-owner cache (owner_cache.c) ---- */

static struct store_bytes cert_der(long serial)
{
    X509 *x = make_cert(serial);
    struct store_bytes b;
    b.data = crypto_cert_der(x, a, &b.len);
    X509_free(x);
    return b;
}

Test(sztp_decide, owner_kit_made_once_per_chain)
{
    struct store_bytes certs[] = {cert_der(1001), cert_der(1002)};
    const struct sztp_owner_kit *k = sztp_owner_kit(a, certs, 2);
    cr_assert_not_null(k);
    cr_assert_eq(sztp_owner_kit(a, certs, 2), k, "the same chain: the same kit");
    cr_assert_eq(k->pinned_der_len, certs[1].len, "the last certificate is pinned");
    cr_assert_eq(memcmp(k->pinned_der, certs[1].data, certs[1].len), 0);
    unsigned char md[32];
    EVP_Digest(certs[1].data, certs[1].len, md, NULL, EVP_sha256(), NULL);
    cr_assert_eq(memcmp(k->pinned_sha256, md, 32), 0);
    size_t len;
    unsigned char *cms = base64_decode(a, k->certs_b64, strlen(k->certs_b64), &len);
    char why[256];
    cr_assert_eq(crypto_certs_only_check(cms, len, 8, why), 0, "%s", why);
    cr_assert_not_null(k->domain_id);
    struct store_bytes changed[] = {certs[0], cert_der(1003)};
    const struct sztp_owner_kit *k2 = sztp_owner_kit(a, changed, 2);
    cr_assert(k2 && k2 != k, "a changed chain is a new key");
    cr_assert_neq(memcmp(k2->pinned_sha256, k->pinned_sha256, 32), 0);
    struct store_bytes garbage[] = {{(const unsigned char *)"\x30\x03\x02\x01\x01", 5}};
    cr_assert_null(sztp_owner_kit(a, garbage, 1), "no usable certificate");
}

Test(sztp_decide, owner_cache_is_bounded_and_keeps_held_kits)
{
    struct store_bytes first = cert_der(2000);
    const struct sztp_owner_kit *held = sztp_owner_kit(a, &first, 1);
    const char *pinned = base64_encode(a, held->pinned_der, held->pinned_der_len);
    struct arena *b = arena_new();
    for (long i = 1; i <= SZTP_OWNER_CACHE_SIZE + 10; i++) {
        struct store_bytes c = cert_der(2000 + i);
        cr_assert_not_null(sztp_owner_kit(b, &c, 1));
        arena_reset(b); /* the request ends: its kits are let go */
    }
    arena_free(b);
    cr_assert_leq(sztp_owner_cache_count(), SZTP_OWNER_CACHE_SIZE);
    cr_assert_str_eq(base64_encode(a, held->pinned_der, held->pinned_der_len), pinned,
                     "a kit evicted while a request holds it stays whole until let go");
    cr_assert_neq(sztp_owner_kit(a, &first, 1), held, "evicted: made again");
}
