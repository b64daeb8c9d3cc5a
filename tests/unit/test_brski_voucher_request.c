/*
 * voucher_request_parse (service/voucher/voucher.c): what BRSKI reads from
 * a registrar's or pledge's voucher-request (RFC 8995 §3.3): valid ones
 * with their deployed variants, malformed ones, and the bounds.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/yang.h"
#include "voucher/voucher.h"

static struct ly_ctx *yang;
static struct arena *a;

static void setup(void)
{
    struct masad_error err;
    cr_assert_eq(yang_context_new(&yang, &err), 0, "%s", err.message);
    a = arena_new();
}

static void teardown(void)
{
    arena_free(a);
    ly_ctx_destroy(yang);
}

TestSuite(voucher_request, .init = setup, .fini = teardown);

static int parse(const char *json, struct voucher_request *vr, char *why)
{
    return voucher_request_parse(yang, a, (const unsigned char *)json, strlen(json), vr, why, 256);
}

#define NONCE "6TsUU1KfnaPA1cBTdcBBvw=="

Test(voucher_request, valid)
{
    struct voucher_request vr;
    char why[256];
    cr_assert_eq(parse("{\"ietf-voucher-request:voucher\":{\"created-on\":\"2024-05-01T09:59:00Z\","
                       "\"assertion\":\"proximity\",\"serial-number\":\"JADA123456789\","
                       "\"nonce\":\"" NONCE "\",\"idevid-issuer\":\"BAUDAwI=\"}}",
                       &vr, why),
                 0, "%s", why);
    cr_assert_str_eq(vr.serial, "JADA123456789");
    cr_assert_str_eq(vr.assertion, "proximity");
    cr_assert_eq(vr.nonce_len, 16);
    cr_assert_eq(memcmp(vr.nonce, "\xe9\x3b\x14\x53\x52\x9f\x9d\xa3\xc0\xd5\xc0\x53\x75\xc0\x41\xbf", 16), 0);
    cr_assert_str_eq(vr.nonce_text, NONCE);
    cr_assert_eq(vr.idevid_issuer_len, 5);
    cr_assert(!vr.idevid_issuer_is_text);
    cr_assert_null(vr.prior_signed);
    cr_assert(!vr.voucher_root);
}

Test(voucher_request, nonceless)
{
    struct voucher_request vr;
    char why[256];
    cr_assert_eq(parse("{\"ietf-voucher-request:voucher\":{\"serial-number\":\"SN-1\"}}", &vr, why),
                 0, "%s", why);
    cr_assert_null(vr.nonce);
    cr_assert_null(vr.assertion);
}

/* docs/brski.md, Deployed clients: the voucher's own root, unpadded
 * base64url binary leaves */
Test(voucher_request, deployed_variants)
{
    struct voucher_request vr;
    char why[256];
    cr_assert_eq(parse("{\"ietf-voucher:voucher\":{\"serial-number\":\"SN-1\","
                       "\"nonce\":\"6TsUU1KfnaPA1cBTdcBBvw\"}}", &vr, why),
                 0, "%s", why);
    cr_assert(vr.voucher_root);
    cr_assert_eq(vr.nonce_len, 16);
    cr_assert_str_eq(vr.nonce_text, "6TsUU1KfnaPA1cBTdcBBvw");
}

static void refused(const char *json, const char *why_starts)
{
    struct voucher_request vr;
    char why[256] = "";
    cr_assert_eq(parse(json, &vr, why), -1, "accepted: %s", json);
    cr_assert(!strncmp(why, why_starts, strlen(why_starts)), "why: %s", why);
}

Test(voucher_request, malformed)
{
    refused("", "");
    refused("{\"ietf-voucher-request:voucher\":", "");
    refused("[1,2]", "the voucher-request is not {\"ietf-voucher-request:voucher\": {...}}");
    refused("{\"ietf-voucher-request:voucher\":\"x\"}",
            "the voucher-request is not {\"ietf-voucher-request:voucher\": {...}}");
    refused("{\"ietf-voucher-request:voucher\":{\"serial-number\":\"SN-1\"},\"x\":1}",
            "the voucher-request is not {\"ietf-voucher-request:voucher\": {...}}");
    refused("{\"ietf-voucher-request:voucher\":{\"serial-number\":\"SN-1\",\"assertion\":\"maybe\"}}",
            "the voucher-request is invalid: ");
    refused("{\"ietf-voucher-request:voucher\":{\"serial-number\":\"SN-1\",\"unknown-leaf\":1}}",
            "the voucher-request is invalid: ");
    refused("{\"ietf-voucher-request:voucher\":{\"serial-number\":\"SN-1\",\"nonce\":\"!!!\"}}", "nonce is not base64");
}

/* nesting beyond what a voucher-request has is refused before libyang */
Test(voucher_request, bounds)
{
    char deep[512];
    size_t n = 0;
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"ietf-voucher-request:voucher\":{\"serial-number\":");
    for (int i = 0; i < 20; i++)
        deep[n++] = '[';
    for (int i = 0; i < 20; i++)
        deep[n++] = ']';
    snprintf(deep + n, sizeof(deep) - n, "}}");
    refused(deep, "");
    /* a serial-number that is not a string */
    refused("{\"ietf-voucher-request:voucher\":{\"serial-number\":7}}", "");
}
