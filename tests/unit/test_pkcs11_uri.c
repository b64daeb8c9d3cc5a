/* PKCS#11 URIs (RFC 7512) through p11-kit's parser: what masad takes from
 * them, and each refusal with the attribute it names. */
#include <criterion/criterion.h>
#include <string.h>

#include "crypto/pkcs11_uri.h"

Test(pkcs11_uri, path_and_query_attributes)
{
    struct pkcs11_uri u;
    struct masad_error err;
    cr_assert_eq(pkcs11_uri_parse("pkcs11:token=my%20token;object=masa;type=private;id=%01%ff"
                                  "?pin-value=1234&module-path=/usr/lib/x.so",
                                  &u, &err), 0, "%s", err.message);
    cr_assert_str_eq(u.token, "my token");
    cr_assert_str_eq(u.object, "masa");
    cr_assert_eq(u.id_len, 2);
    cr_assert_eq(u.id[0], 0x01);
    cr_assert_eq(u.id[1], 0xff);
    cr_assert_str_eq(u.pin_value, "1234");
    cr_assert_str_eq(u.module_path, "/usr/lib/x.so");
    pkcs11_uri_clear(&u);
}

/* what `p11tool --list-all-privkeys` prints: every RFC 7512 token attribute */
Test(pkcs11_uri, every_token_attribute_is_known)
{
    struct pkcs11_uri u;
    struct masad_error err;
    cr_assert_eq(pkcs11_uri_parse("pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;"
                                  "serial=1a2b3c4d5e6f7a8b;token=masad;slot-id=3;"
                                  "library-manufacturer=SoftHSM;id=%01;object=masa;type=private"
                                  "?x-vendor=1&pin-source=file:/run/pin",
                                  &u, &err), 0, "%s", err.message);
    cr_assert_str_eq(u.token, "masad");
    cr_assert_str_eq(u.pin_source, "file:/run/pin");
    cr_assert_null(u.pin_value);
    cr_assert_null(u.module_path);
    pkcs11_uri_clear(&u);
}

static void refused(const char *uri, const char *why)
{
    struct pkcs11_uri u;
    struct masad_error err;
    cr_assert_eq(pkcs11_uri_parse(uri, &u, &err), -1, "%s accepted", uri);
    cr_assert_str_eq(err.message, why, "%s", uri);
}

/* A typo used to be ignored, and the key then looked for without it. */
Test(pkcs11_uri, unknown_attributes_are_named)
{
    refused("pkcs11:tokem=masad;object=masa",
            "unknown PKCS#11 URI attribute \"tokem\" (RFC 7512 §2.3)");
    refused("pkcs11:object=masa;type=privat",
            "unknown PKCS#11 URI attribute \"type\" (RFC 7512 §2.3)");
    refused("pkcs11:object=masa?pin-vaule=1234",
            "unknown PKCS#11 URI attribute \"pin-vaule\" (RFC 7512 §2.3)");
    refused("pkcs11:object=masa?module-name=softhsm2",
            "the PKCS#11 URI attribute \"module-name\" is not supported by masad: name the "
            "module with module-path");
    refused("pkcs11:object=masa;library-version=2.6",
            "the PKCS#11 URI attribute \"library-version\" is not supported by masad");
}

Test(pkcs11_uri, malformed_uris_are_refused)
{
    refused("file:/x", "not a PKCS#11 URI: it must start with pkcs11:");
    refused("pkcs11:object=a;object=b",
            "malformed PKCS#11 URI: attribute \"object\" appears twice (RFC 7512 §2.3)");
    refused("pkcs11:object=masa?pin-value=1&pin-value=2",
            "malformed PKCS#11 URI: attribute \"pin-value\" appears twice (RFC 7512 §2.3)");
    refused("pkcs11:object=%zz",
            "malformed PKCS#11 URI: attribute \"object\": URI encoding invalid or corrupted");
    refused("pkcs11:id=%4", "malformed PKCS#11 URI: attribute \"id\": URI encoding invalid or "
                            "corrupted");
    refused("pkcs11:object", "malformed PKCS#11 URI: \"object\" is not NAME=VALUE (RFC 7512 §2.3)");
    refused("pkcs11:object=masa;;token=t",
            "malformed PKCS#11 URI: \"\" is not NAME=VALUE (RFC 7512 §2.3)");
    refused("pkcs11:object=a%00b", "malformed PKCS#11 URI: attribute \"object\" holds a NUL byte");
    refused("pkcs11:token=t", "the PKCS#11 URI names no key: give object= or id=");
}
