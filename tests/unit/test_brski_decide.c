/*
 * brski_decide (service/brski/requestvoucher.c): every branch of the
 * MASA's decision (RFC 8995 §5.5, docs/brski.md), from a claim and facts
 * made here, with certificates generated in the test; no database, no HSM.
 */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <string.h>

#include "brski/brski_internal.h"
#include "crypto/crypto.h"

static const time_t now = 1800000000;
static struct arena *a;
static EVP_PKEY *key;
static X509 *domain_ca, *registrar;
static STACK_OF(X509) *path;

/* A certificate for key, signed by key, valid from `now` for days. */
static X509 *make_cert(const char *cn, long days)
{
    X509 *x = X509_new();
    cr_assert(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)strlen(cn));
    ASN1_TIME_set(X509_getm_notBefore(x), now);
    ASN1_TIME_set(X509_getm_notAfter(x), now + days * 86400);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    cr_assert(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

static void setup(void)
{
    a = arena_new();
    key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    cr_assert(key);
    domain_ca = make_cert("domain-ca", 3650);
    registrar = make_cert("registrar", 30);
    path = sk_X509_new_null();
    sk_X509_push(path, registrar);
    sk_X509_push(path, domain_ca);
}

static void teardown(void)
{
    sk_X509_free(path);
    X509_free(registrar);
    X509_free(domain_ca);
    EVP_PKEY_free(key);
    arena_free(a);
}

TestSuite(brski_decide, .init = setup, .fini = teardown);

static const unsigned char nonce[] = "0123456789abcdef";

/* A nonced claim with proximity, by the registrar. */
static struct brski_claim claim(void)
{
    struct brski_claim c = {0};
    c.rvr.nonce = nonce;
    c.rvr.nonce_len = 16;
    c.registrar = registrar;
    c.path = path;
    c.serial = "SN-1";
    c.proximity = true;
    return c;
}

/* A known device owned by "acme", the registrar's chain at acme's domain CA. */
static struct brski_facts owned(void)
{
    struct brski_facts f = {0};
    f.device_known = true;
    f.current_owner = "acme";
    f.domain = (struct brski_domain){"acme", domain_ca, "any", false};
    return f;
}

static const struct brski_policy refuse_unowned = {BRSKI_UNOWNED_REFUSE, 86400};
static const struct brski_policy tofu = {BRSKI_UNOWNED_LOGGED_WITH_PROXIMITY, 86400};

static void expect_refusal(struct refusal r, int status, const char *sentence)
{
    cr_assert_eq(r.status, status, "status %d: %s", r.status, r.sentence ? r.sentence : "");
    cr_assert_str_eq(r.sentence, sentence);
    cr_assert_str_eq(r.action, "voucher.refuse");
}

Test(brski_decide, unknown_device_is_404)
{
    struct brski_claim c = claim();
    struct brski_facts f = {0};
    struct brski_decision d;
    expect_refusal(brski_decide(a, &c, &f, &tofu, now, &d), 404,
                   "the MASA does not know the device \"SN-1\"");
}

Test(brski_decide, owner_match_pins_the_domain_certificate)
{
    struct brski_claim c = claim();
    struct brski_facts f = owned();
    struct brski_decision d;
    struct refusal r = brski_decide(a, &c, &f, &refuse_unowned, now, &d);
    cr_assert(!refused(&r), "%s", r.sentence);
    cr_assert_str_eq(d.assertion, "proximity");
    cr_assert_eq(d.pinned, domain_ca);
    cr_assert_str_eq(d.owner, "acme");
    cr_assert_str_eq(d.basis, "owner");
    cr_assert_eq(d.expires_on, 0, "a nonced voucher does not expire");
}

Test(brski_decide, owner_match_without_proximity_is_verified)
{
    struct brski_claim c = claim();
    c.proximity = false;
    struct brski_facts f = owned();
    struct brski_decision d;
    cr_assert_eq(brski_decide(a, &c, &f, &refuse_unowned, now, &d).status, 0);
    cr_assert_str_eq(d.assertion, "verified");
}

Test(brski_decide, owner_pinning_registrar_ee_pins_the_registrar)
{
    struct brski_claim c = claim();
    struct brski_facts f = owned();
    f.domain.pin_registrar = true;
    struct brski_decision d;
    cr_assert_eq(brski_decide(a, &c, &f, &refuse_unowned, now, &d).status, 0);
    cr_assert_eq(d.pinned, registrar);
}

Test(brski_decide, nonceless_expires_at_the_lifetime_or_the_registrar_certificate)
{
    struct brski_claim c = claim();
    c.rvr.nonce = NULL;
    struct brski_facts f = owned();
    struct brski_decision d;
    cr_assert_eq(brski_decide(a, &c, &f, &refuse_unowned, now, &d).status, 0);
    cr_assert_eq(d.expires_on, now + 86400);
    /* RFC 8366 §5.3: never after the registrar's certificate (30 days) */
    struct brski_policy long_life = {BRSKI_UNOWNED_REFUSE, 3650u * 86400};
    cr_assert_eq(brski_decide(a, &c, &f, &long_life, now, &d).status, 0);
    struct tm tm;
    cr_assert(ASN1_TIME_to_tm(X509_get0_notAfter(registrar), &tm) == 1);
    cr_assert_eq(d.expires_on, timegm(&tm));
}

Test(brski_decide, other_owner_is_403)
{
    struct brski_claim c = claim();
    struct brski_facts f = owned();
    f.current_owner = "globex";
    struct brski_decision d;
    expect_refusal(brski_decide(a, &c, &f, &tofu, now, &d), 403,
                   "the device belongs to another owner than the registrar's domain");
}

Test(brski_decide, owned_device_and_unregistered_registrar_is_403)
{
    struct brski_claim c = claim();
    struct brski_facts f = owned();
    f.domain = (struct brski_domain){0};
    struct brski_decision d;
    expect_refusal(brski_decide(a, &c, &f, &tofu, now, &d), 403,
                   "the device belongs to another owner than the registrar's domain");
}

Test(brski_decide, nonceless_from_unregistered_registrar_is_403)
{
    struct brski_claim c = claim();
    c.rvr.nonce = NULL;
    struct brski_facts f = {.device_known = true};
    struct brski_decision d;
    expect_refusal(brski_decide(a, &c, &f, &tofu, now, &d), 403,
                   "a nonceless voucher-request must come from a registrar of a registered "
                   "domain (RFC 8995 §5.5.4)");
}

/* the facts of a device whose last voucher pinned `pinned` */
static struct brski_facts renewable(X509 *pinned)
{
    struct brski_facts f = {.device_known = true};
    f.domain = (struct brski_domain){"acme", domain_ca, "any", false};
    f.last_found = true;
    f.last_owner = "acme";
    f.last_assertion = "verified";
    unsigned char spki[32];
    crypto_cert_digests(pinned, f.last_domain_cert_sha256, spki);
    return f;
}

Test(brski_decide, renewal_of_the_same_domain_certificate)
{
    struct brski_claim c = claim();
    struct brski_facts f = renewable(domain_ca);
    struct brski_decision d;
    struct refusal r = brski_decide(a, &c, &f, &refuse_unowned, now, &d);
    cr_assert(!refused(&r), "%s", r.sentence);
    cr_assert_str_eq(d.basis, "renewal");
    cr_assert_str_eq(d.assertion, "verified", "the last voucher's assertion");
    cr_assert_str_eq(d.owner, "acme");
    cr_assert_eq(d.pinned, domain_ca);
}

Test(brski_decide, no_renewal_after_an_ownership_change)
{
    struct brski_claim c = claim();
    struct brski_facts f = renewable(domain_ca);
    f.ownership_changed_since_last = true;
    struct brski_decision d;
    expect_refusal(brski_decide(a, &c, &f, &refuse_unowned, now, &d), 403,
                   "the device has no recorded owner");
}

Test(brski_decide, no_renewal_for_another_domain_certificate)
{
    struct brski_claim c = claim();
    struct brski_facts f = renewable(registrar);
    struct brski_decision d;
    expect_refusal(brski_decide(a, &c, &f, &refuse_unowned, now, &d), 403,
                   "the device has no recorded owner");
}

Test(brski_decide, unowned_refused_by_policy)
{
    struct brski_claim c = claim();
    struct brski_facts f = {.device_known = true};
    struct brski_decision d;
    expect_refusal(brski_decide(a, &c, &f, &refuse_unowned, now, &d), 403,
                   "the device has no recorded owner");
}

Test(brski_decide, unowned_without_proximity_is_403)
{
    struct brski_claim c = claim();
    c.proximity = false;
    struct brski_facts f = {.device_known = true};
    struct brski_decision d;
    expect_refusal(brski_decide(a, &c, &f, &tofu, now, &d), 403,
                   "the device has no recorded owner and the pledge's voucher-request does not "
                   "name this registrar (proximity, RFC 8995 §5.5.5)");
}

Test(brski_decide, unowned_with_proximity_is_logged_to_the_top_of_the_chain)
{
    struct brski_claim c = claim();
    struct brski_facts f = {.device_known = true};
    struct brski_decision d;
    struct refusal r = brski_decide(a, &c, &f, &tofu, now, &d);
    cr_assert(!refused(&r), "%s", r.sentence);
    cr_assert_str_eq(d.assertion, "logged");
    cr_assert_str_eq(d.basis, "unowned-logged");
    cr_assert_eq(d.pinned, domain_ca, "RFC 8995 §7.4.2: the top of the registrar's chain");
    cr_assert_null(d.owner);
}
