/*
 * The signer with the SoftHSM token that scripts/test made (and with a PEM
 * file key): CMS signatures verified by the openssl command line.
 */
#include <criterion/criterion.h>
#include <openssl/cms.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "crypto/crypto.h"

#define VOUCHER_OID "1.2.840.113549.1.9.16.1.40"

static char *env(const char *name)
{
    char *v = getenv(name);
    cr_assert(v && *v, "%s unset: run through scripts/test", name);
    return v;
}

/* Paths in a small ring of static buffers: the tests keep a few at once. */
static char *pki(const char *file)
{
    static char ring[8][512];
    static unsigned next;
    char *p = ring[next++ % 8];
    snprintf(p, sizeof(ring[0]), "%s/%s", env("MASAD_TEST_PKI"), file);
    return p;
}

static struct crypto_signer_options hsm_options(void)
{
    struct crypto_signer_options o = {env("MASAD_PKCS11_URI"), env("MASAD_PKCS11_MODULE"),
                                      pki("masa-chain.crt"), env("MASAD_PKCS11_PIN")};
    return o;
}

/* Signs, writes the DER, and lets `openssl cms -verify` check it against the
 * manufacturer root; returns what openssl printed as the content. */
static void sign_and_verify_with_openssl(struct crypto_signer *s)
{
    const char *content = "{\"ietf-voucher:voucher\":{\"serial-number\":\"X\"}}";
    struct arena *a = arena_new();
    unsigned char *der;
    size_t len;
    struct masad_error err;
    cr_assert_eq(crypto_cms_sign(s, a, content, strlen(content), VOUCHER_OID, &der, &len, &err), 0,
                 "%s", err.message);

    const unsigned char *p = der;
    CMS_ContentInfo *cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
    cr_assert(cms);
    char oid[64];
    OBJ_obj2txt(oid, sizeof(oid), CMS_get0_eContentType(cms), 1);
    cr_assert_str_eq(oid, VOUCHER_OID);
    CMS_ContentInfo_free(cms);

    char path[] = "/tmp/masad-signer-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_eq(write(fd, der, len), (ssize_t)len);
    close(fd);
    char cmd[1024];
    char *root = pki("root-ca.crt");
    snprintf(cmd, sizeof(cmd),
             "openssl cms -verify -inform DER -in %s -binary -CAfile %s -purpose any 2>&1", path, root);
    FILE *out = popen(cmd, "r");
    char buf[4096] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, out);
    buf[n] = 0;
    int status = pclose(out);
    unlink(path);
    cr_assert_eq(WEXITSTATUS(status), 0, "openssl: %s", buf);
    cr_assert(strstr(buf, content), "content: %s", buf);
    cr_assert(strstr(buf, "Verification successful"), "openssl: %s", buf);
    arena_free(a);
}

Test(signer, hsm_key_signs_cms_that_openssl_verifies)
{
    struct crypto_signer_options o = hsm_options();
    struct crypto_signer *s;
    struct masad_error err;
    cr_assert_eq(crypto_signer_open(&o, &s, &err), 0, "%s", err.message);
    cr_assert(crypto_signer_is_hsm(s));
    cr_assert_eq(crypto_signer_probe(s), 0);
    sign_and_verify_with_openssl(s);
    crypto_signer_free(s);
}

Test(signer, file_key_signs_too)
{
    struct crypto_signer_options o = {pki("masa-file.key"), NULL, pki("masa-file.crt"), NULL};
    struct crypto_signer *s;
    struct masad_error err;
    cr_assert_eq(crypto_signer_open(&o, &s, &err), 0, "%s", err.message);
    cr_assert_not(crypto_signer_is_hsm(s));
    sign_and_verify_with_openssl(s);
    crypto_signer_free(s);
}

static void refused(struct crypto_signer_options o, const char *why)
{
    struct crypto_signer *s = NULL;
    struct masad_error err;
    cr_assert_eq(crypto_signer_open(&o, &s, &err), -1, "opened");
    cr_assert(strstr(err.message, why), "message: %s", err.message);
}

Test(signer, wrong_pin_is_refused)
{
    struct crypto_signer_options o = hsm_options();
    o.pin = "0000";
    refused(o, "PKCS#11 login to token");
    /* not 503: serve must not try a refused PIN again */
    struct crypto_signer *s = NULL;
    struct masad_error err;
    cr_assert_eq(crypto_signer_open(&o, &s, &err), -1);
    cr_assert_eq(err.status, 500);
    cr_assert_str_eq(err.code, "hsm-pin");
    cr_assert(strstr(err.message, "check MASAD_PKCS11_PIN"), "%s", err.message);
}

Test(signer, unknown_token_and_key_are_named)
{
    struct crypto_signer_options o = hsm_options();
    o.key = "pkcs11:token=no-such-token;object=masa";
    refused(o, "no PKCS#11 token labelled \"no-such-token\"");
    o = hsm_options();
    const char *uri = env("MASAD_PKCS11_URI");
    const char *object = strstr(uri, "object=masa");
    cr_assert(object);
    char *other;
    cr_assert(asprintf(&other, "%.*sobject=nokey%s", (int)(object - uri), uri,
                       object + strlen("object=masa")) > 0);
    o.key = other;
    refused(o, "holds no private key \"nokey\"");
    free(other);
}

Test(signer, key_and_certificate_must_match)
{
    struct crypto_signer_options o = hsm_options();
    o.certificate = pki("masa-file.crt");
    refused(o, "does not match the signer certificate");
}

Test(signer, missing_module_and_certificate_are_named)
{
    struct crypto_signer_options o = hsm_options();
    o.pkcs11_module = "/nonexistent/libpkcs11.so";
    refused(o, "cannot load the PKCS#11 module /nonexistent/libpkcs11.so");
    o = hsm_options();
    o.certificate = "/nonexistent/masa.crt";
    refused(o, "cannot read /nonexistent/masa.crt");
}
