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
    cr_assert_str_eq(u.type, "private");
    cr_assert_eq(u.id_len, 2);
    cr_assert_eq(u.id[0], 0x01);
    cr_assert_eq(u.id[1], 0xff);
    cr_assert_str_eq(u.pin_value, "1234");
    cr_assert_str_eq(u.module_path, "/usr/lib/x.so");
    pkcs11_uri_clear(&u);
}

Test(pkcs11_uri, unknown_attributes_are_ignored)
{
    struct pkcs11_uri u;
    struct masad_error err;
    cr_assert_eq(pkcs11_uri_parse("pkcs11:manufacturer=SoftHSM;object=k", &u, &err), 0);
    cr_assert_str_eq(u.object, "k");
    pkcs11_uri_clear(&u);
}

static void refused(const char *uri, const char *why)
{
    struct pkcs11_uri u;
    struct masad_error err;
    cr_assert_eq(pkcs11_uri_parse(uri, &u, &err), -1, "%s accepted", uri);
    cr_assert(strstr(err.message, why), "%s: %s", uri, err.message);
}

Test(pkcs11_uri, malformed_uris_are_refused)
{
    refused("file:/x", "must start with pkcs11:");
    refused("pkcs11:object=a;object=b", "malformed");
    refused("pkcs11:object=%zz", "malformed");
    refused("pkcs11:object=%4", "malformed");
    refused("pkcs11:object", "malformed");
    refused("pkcs11:object=a%00b", "malformed");
    refused("pkcs11:token=t", "names no key");
}
