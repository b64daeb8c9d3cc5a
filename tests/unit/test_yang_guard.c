/*
 * libyang 2.1.30 never returns from parsing conveyed information whose
 * top level holds two nodes of its one choice (STACK-NOTES: the hang).
 * yang_check_data and yang_convert_data refuse such text before libyang's
 * schema parser sees it, in JSON and in XML. Without the guard these tests
 * do not finish: criterion's timeout fails them.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "common/yang.h"

static struct ly_ctx *ctx;

static void setup(void)
{
    struct masad_error err;
    cr_assert_eq(yang_context_new(&ctx, &err), 0, "%s", err.message);
}

static void teardown(void) { ly_ctx_destroy(ctx); }

#define CI "ietf-sztp-conveyed-info"
#define NS "urn:ietf:params:xml:ns:yang:ietf-sztp-conveyed-info"
#define REDIRECT_JSON \
    "\"" CI ":redirect-information\": {\"bootstrap-server\": [{\"address\": \"sztp.example.com\"}]}"
#define ONBOARDING_JSON "\"" CI ":onboarding-information\": {\"boot-image\": {\"os-name\": \"x\"}}"
#define REDIRECT_XML                                                                     \
    "<redirect-information xmlns=\"" NS "\"><bootstrap-server><address>sztp.example.com" \
    "</address></bootstrap-server></redirect-information>"
#define ONBOARDING_XML \
    "<onboarding-information xmlns=\"" NS "\"><boot-image><os-name>x</os-name></boot-image></onboarding-information>"

static void expect_refused(LYD_FORMAT format, const char *text, const char *sentence)
{
    struct masad_error err;
    char where[256] = "unset";
    cr_assert_eq(yang_check_data(ctx, CI, "conveyed-information", format, text, where, &err), -1,
                 "accepted: %s", text);
    cr_assert_eq(err.status, 422);
    cr_assert(strstr(err.message, sentence), "%s", err.message);
    cr_assert(strstr(err.message, "(RFC 8572 §6.1, ietf-sztp-conveyed-info)"), "%s", err.message);
    cr_assert_str_eq(where, "", "the fault is the whole document");
}

Test(yang_guard, both_cases_of_the_choice_in_json_are_refused, .init = setup, .fini = teardown,
     .timeout = 20)
{
    expect_refused(LYD_JSON, "{" REDIRECT_JSON ", " ONBOARDING_JSON "}",
                   "both redirect-information and onboarding-information are given, but they are "
                   "cases of the choice information-type, which holds one case");
    expect_refused(LYD_JSON, "{" ONBOARDING_JSON ", " REDIRECT_JSON "}",
                   "both onboarding-information and redirect-information are given");
}

Test(yang_guard, one_case_twice_in_json_is_refused, .init = setup, .fini = teardown, .timeout = 20)
{
    expect_refused(LYD_JSON, "{" REDIRECT_JSON ", " REDIRECT_JSON "}",
                   "redirect-information is given twice, but the choice information-type holds "
                   "one case once");
}

Test(yang_guard, both_cases_in_xml_are_refused, .init = setup, .fini = teardown, .timeout = 20)
{
    expect_refused(LYD_XML, REDIRECT_XML ONBOARDING_XML,
                   "both redirect-information and onboarding-information are given");
    expect_refused(LYD_XML, ONBOARDING_XML ONBOARDING_XML, "onboarding-information is given twice");
}

Test(yang_guard, conversion_refuses_both_cases, .init = setup, .fini = teardown, .timeout = 20)
{
    struct arena *a = arena_new();
    cr_assert_null(yang_convert_data(ctx, CI, "conveyed-information", LYD_JSON,
                                     "{" REDIRECT_JSON ", " ONBOARDING_JSON "}", LYD_XML, a));
    cr_assert_null(yang_convert_data(ctx, CI, "conveyed-information", LYD_XML,
                                     REDIRECT_XML ONBOARDING_XML, LYD_JSON, a));
    /* one case still converts */
    const char *xml = yang_convert_data(ctx, CI, "conveyed-information", LYD_JSON,
                                        "{" REDIRECT_JSON "}", LYD_XML, a);
    cr_assert(xml && strstr(xml, "sztp.example.com"), "%s", xml ? xml : "NULL");
    arena_free(a);
}

Test(yang_guard, one_case_still_passes_and_other_faults_keep_their_path, .init = setup,
     .fini = teardown, .timeout = 20)
{
    struct masad_error err;
    char where[256];
    cr_assert_eq(yang_check_data(ctx, CI, "conveyed-information", LYD_JSON, "{" REDIRECT_JSON "}",
                                 where, &err), 0, "%s", err.message);
    cr_assert_eq(yang_check_data(ctx, CI, "conveyed-information", LYD_XML, ONBOARDING_XML, where,
                                 &err), 0, "%s", err.message);
    cr_assert_eq(yang_check_data(ctx, CI, "conveyed-information", LYD_JSON,
                                 "{\"" CI ":redirect-information\": {\"bootstrap-server\": [{\"port\": 1}]}}",
                                 where, &err), -1);
    cr_assert(strstr(where, "redirect-information"), "%s", where);
    /* not even opaque data: refused with libyang's reason, not parsed further */
    cr_assert_eq(yang_check_data(ctx, CI, "conveyed-information", LYD_XML, "<a><b></a>", where, &err), -1);
    cr_assert_eq(err.status, 422);
}
