/* The audit log's pure parts (docs/audit.md, The hash of an event): the
 * canonical detail written once, and the event hash over its encoding. No
 * database, h2o or HSM. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <openssl/sha.h>
#include <string.h>

#include "audit/audit.h"
#include "common/arena.h"
#include "common/error.h"
#include "common/json.h"

/* What audit_append does to a detail that is not canonical: parse, then
 * write it with sorted keys. */
static const char *rewritten(struct arena *a, const char *text)
{
    struct json_value *v;
    struct masad_error err;
    if (json_parse(a, text, strlen(text), 64, &v, &err) != 0)
        return NULL;
    yajl_gen g = json_gen_new();
    json_write_canonical(g, v);
    return json_finish(g, a, NULL);
}

Test(audit_detail, is_written_canonically_at_once)
{
    struct arena *a = arena_new();
    struct audit_detail *d = audit_detail_new(a);
    audit_detail_str(d, "reason", "the \"token\" lacks a scope \\ / \x01 caf\xc3\xa9");
    audit_detail_int(d, "status", 403);
    audit_detail_str(d, "peer", NULL);
    audit_detail_bool(d, "signed", true);
    audit_detail_int(d, "count", -9223372036854775807LL);
    audit_detail_str(d, "Zeta", "upper case sorts first");
    const char *text = audit_detail_text(d);
    cr_assert_not_null(text);
    cr_assert_str_eq(text, "{\"Zeta\":\"upper case sorts first\",\"count\":-9223372036854775807,"
                           "\"peer\":null,\"reason\":\"the \\\"token\\\" lacks a scope \\\\ / "
                           "\\u0001 caf\xc3\xa9\",\"signed\":true,\"status\":403}");
    /* a fixed point of the parse and rewrite it no longer goes through */
    cr_assert_str_eq(rewritten(a, text), text);
    arena_free(a);
}

Test(audit_detail, bad_utf8_is_replaced_as_when_rewritten)
{
    struct arena *a = arena_new();
    struct audit_detail *d = audit_detail_new(a);
    audit_detail_str(d, "b", "\xff\xfe bytes");
    audit_detail_str(d, "a", "ok");
    const char *text = audit_detail_text(d);
    cr_assert_not_null(text);
    cr_assert_str_eq(rewritten(a, text), text);
    arena_free(a);
}

Test(audit_detail, a_key_twice_or_too_many_is_no_detail)
{
    struct arena *a = arena_new();
    struct audit_detail *d = audit_detail_new(a);
    audit_detail_str(d, "peer", "x");
    audit_detail_str(d, "peer", "y");
    cr_assert_null(audit_detail_text(d));
    d = audit_detail_new(a);
    for (int i = 0; i <= AUDIT_DETAIL_MEMBERS; i++)
        audit_detail_int(d, arena_printf(a, "k%02d", i), i);
    cr_assert_null(audit_detail_text(d));
    d = audit_detail_new(a);
    cr_assert_str_eq(audit_detail_text(d), "{}");
    arena_free(a);
}

/* F(x) of docs/audit.md, appended to buf */
static size_t field(unsigned char *buf, size_t at, const char *x)
{
    uint32_t len = x ? htonl((uint32_t)strlen(x)) : 0xffffffffu;
    memcpy(buf + at, &len, 4);
    if (x)
        memcpy(buf + at + 4, x, strlen(x));
    return at + 4 + (x ? strlen(x) : 0);
}

Test(audit_hash, follows_the_documented_encoding)
{
    const char *f[10] = {"17", "3", "42", "2026-11-23T14:05:09.123456Z", "token:caf\xc3\xa9",
                         "device.create", NULL, "acme", "ok", "{\"a\":1}"};
    unsigned char prev[32], buf[512], want[32], got[32];
    memset(prev, 0xab, sizeof(prev));
    size_t n = 15;
    memcpy(buf, "masad-audit-v1\n", 15);
    for (int i = 0; i < 10; i++)
        n = field(buf, n, f[i]);
    memcpy(buf + n, prev, 32);
    SHA256(buf, n + 32, want);
    audit_event_hash(f, prev, got);
    cr_assert_eq(memcmp(got, want, 32), 0);
    /* a NULL field differs from an empty one */
    f[6] = "";
    audit_event_hash(f, prev, got);
    cr_assert_neq(memcmp(got, want, 32), 0);
}
