/*
 * The YANG renditions in yang/ (carried in the binary): every module loads
 * into the one context, and each protocol document kind parses a valid
 * sample and refuses an invalid one (tests/data/yang/).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libyang/plugins_types.h>

#include "common/yang.h"


static struct ly_ctx *ctx;

static void setup(void)
{
    struct masad_error err;
    cr_assert_eq(yang_context_new(&ctx, &err), 0, "%s", err.message);
}

static void teardown(void) { ly_ctx_destroy(ctx); }

static char *sample(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/tests/data/yang/%s", getenv("MASAD_TEST_ROOT") ? getenv("MASAD_TEST_ROOT") : ".", name);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

/* yang-data instance: 0 when valid, else -1 with libyang's message. */
static int parse_yang_data(const char *module, const char *name, const char *json,
                           struct lyd_node **tree, char *why, size_t why_len)
{
    const struct lysc_ext_instance *ext = yang_data_ext(ctx, module, name);
    cr_assert(ext, "no yang-data %s in %s", name, module);
    struct ly_in *in;
    ly_in_new_memory(json, &in);
    *tree = NULL;
    LY_ERR rc = lyd_parse_ext_data(ext, NULL, in, LYD_JSON, LYD_PARSE_STRICT, LYD_VALIDATE_PRESENT, tree);
    ly_in_free(in, 0);
    if (rc != LY_SUCCESS) {
        struct masad_error err;
        yang_error(ctx, &err, 400, "yang", "invalid");
        snprintf(why, why_len, "%s", err.message);
        lyd_free_all(*tree);
        *tree = NULL;
        return -1;
    }
    return 0;
}

/* RESTCONF RPC input: {"module:input": {...}} is parsed as the RPC's input. */
static int parse_rpc_input(const char *rpc, const char *json, char *why, size_t why_len)
{
    char *copy = strdup(json);
    char *key = strstr(copy, "\"ietf-sztp-bootstrap-server:input\"");
    cr_assert(key);
    char *renamed;
    cr_assert(asprintf(&renamed, "%.*s\"ietf-sztp-bootstrap-server:%s\"%s", (int)(key - copy), copy,
                       rpc, key + strlen("\"ietf-sztp-bootstrap-server:input\"")) > 0);
    struct ly_in *in;
    ly_in_new_memory(renamed, &in);
    struct lyd_node *tree = NULL, *op = NULL;
    LY_ERR rc = lyd_parse_op(ctx, NULL, in, LYD_JSON, LYD_TYPE_RPC_YANG, &tree, &op);
    if (rc == LY_SUCCESS)
        rc = lyd_validate_op(tree, NULL, LYD_TYPE_RPC_YANG, NULL);
    ly_in_free(in, 0);
    lyd_free_all(tree);
    free(renamed);
    free(copy);
    if (rc != LY_SUCCESS) {
        struct masad_error err;
        yang_error(ctx, &err, 400, "yang", "invalid");
        snprintf(why, why_len, "%s", err.message);
        return -1;
    }
    return 0;
}

static void yang_data_pair(const char *module, const char *name, const char *valid,
                           const char *invalid, const char *reason)
{
    char why[1024] = "";
    struct lyd_node *tree;
    char *text = sample(valid);
    cr_assert_eq(parse_yang_data(module, name, text, &tree, why, sizeof(why)), 0, "%s: %s", valid, why);
    lyd_free_all(tree);
    free(text);
    text = sample(invalid);
    cr_assert_eq(parse_yang_data(module, name, text, &tree, why, sizeof(why)), -1, "%s accepted", invalid);
    cr_assert(strstr(why, reason), "%s: %s", invalid, why);
    free(text);
}

static void rpc_pair(const char *rpc, const char *valid, const char *invalid, const char *reason)
{
    char why[1024] = "";
    char *text = sample(valid);
    cr_assert_eq(parse_rpc_input(rpc, text, why, sizeof(why)), 0, "%s: %s", valid, why);
    free(text);
    text = sample(invalid);
    cr_assert_eq(parse_rpc_input(rpc, text, why, sizeof(why)), -1, "%s accepted", invalid);
    cr_assert(strstr(why, reason), "%s: %s", invalid, why);
    free(text);
}

Test(yang, every_module_is_loaded_and_implemented, .init = setup, .fini = teardown)
{
    const char *implemented[][2] = {
        {"masad-config", "2026-11-23"},          {"ietf-restconf", "2017-01-26"},
        {"ietf-voucher", "2018-05-09"},          {"ietf-voucher-request", "2021-05-20"},
        {"ietf-sztp-conveyed-info", "2019-04-30"}, {"ietf-sztp-bootstrap-server", "2019-04-30"},
        {"ietf-sztp-csr", "2024-10-10"},
    };
    for (size_t i = 0; i < sizeof(implemented) / sizeof(implemented[0]); i++) {
        const struct lys_module *m = ly_ctx_get_module_implemented(ctx, implemented[i][0]);
        cr_assert(m, "%s not implemented", implemented[i][0]);
        cr_assert_str_eq(m->revision, implemented[i][1]);
    }
    const char *imported[] = {"ietf-ztp-types", "ietf-crypto-types", "ietf-netconf-acm"};
    for (size_t i = 0; i < 3; i++)
        cr_assert(ly_ctx_get_module_latest(ctx, imported[i]), "%s not loaded", imported[i]);
    const struct lys_module *sztp = ly_ctx_get_module_implemented(ctx, "ietf-sztp-bootstrap-server");
    cr_assert_eq(lys_feature_value(sztp, "redirect-server"), LY_SUCCESS);
    cr_assert_eq(lys_feature_value(sztp, "onboarding-server"), LY_SUCCESS);
}

Test(yang, voucher, .init = setup, .fini = teardown)
{
    yang_data_pair("ietf-voucher", "voucher-artifact", "voucher-valid.json",
                   "voucher-invalid.json", "not(../nonce)");
}

Test(yang, voucher_request, .init = setup, .fini = teardown)
{
    yang_data_pair("ietf-voucher-request", "voucher-request-artifact",
                   "voucher-request-valid.json", "voucher-request-invalid.json",
                   "Mandatory node \"serial-number\"");
}

Test(yang, conveyed_information, .init = setup, .fini = teardown)
{
    yang_data_pair("ietf-sztp-conveyed-info", "conveyed-information",
                   "conveyed-info-redirect-valid.json", "conveyed-info-invalid.json",
                   "../configuration");
    yang_data_pair("ietf-sztp-conveyed-info", "conveyed-information",
                   "conveyed-info-onboarding-valid.json", "conveyed-info-invalid.json",
                   "../configuration");
}

Test(yang, restconf_errors, .init = setup, .fini = teardown)
{
    yang_data_pair("ietf-restconf", "yang-errors", "restconf-errors-valid.json",
                   "restconf-errors-invalid.json", "hardware");
}

Test(yang, bootstrap_server_rpcs, .init = setup, .fini = teardown)
{
    rpc_pair("get-bootstrapping-data", "bootstrap-input-valid.json",
             "bootstrap-input-invalid.json", "serial-number");
    rpc_pair("report-progress", "report-progress-valid.json", "report-progress-invalid.json",
             "bootstrap-finished");
}

Test(yang, sztp_csr_support, .init = setup, .fini = teardown)
{
    rpc_pair("get-bootstrapping-data", "csr-support-input-valid.json",
             "csr-support-input-invalid.json", "identity not derived");
}

/* libyang cannot compile ietf-voucher-request as published, so ours writes
 * the container out; pin it against RFC 8995 §3.3's tree diagram. */
Test(yang, voucher_request_tree_matches_rfc8995, .init = setup, .fini = teardown)
{
    static const struct {
        const char *name;
        LY_DATA_TYPE type;
        const char *typedef_plugin; /* for derived types */
        bool mandatory;
    } rfc[] = {
        {"created-on", LY_TYPE_STRING, "date-and-time", false},
        {"expires-on", LY_TYPE_STRING, "date-and-time", false},
        {"assertion", LY_TYPE_ENUM, NULL, false},
        {"serial-number", LY_TYPE_STRING, NULL, true},
        {"idevid-issuer", LY_TYPE_BINARY, NULL, false},
        {"pinned-domain-cert", LY_TYPE_BINARY, NULL, false},
        {"domain-cert-revocation-checks", LY_TYPE_BOOL, NULL, false},
        {"nonce", LY_TYPE_BINARY, NULL, false},
        {"last-renewal-date", LY_TYPE_STRING, "date-and-time", false},
        {"prior-signed-voucher-request", LY_TYPE_BINARY, NULL, false},
        {"proximity-registrar-cert", LY_TYPE_BINARY, NULL, false},
    };
    char why[512];
    struct lyd_node *tree;
    cr_assert_eq(parse_yang_data("ietf-voucher-request", "voucher-request-artifact",
                                 "{\"ietf-voucher-request:voucher\": {\"serial-number\": \"x\"}}",
                                 &tree, why, sizeof(why)), 0, "%s", why);
    const struct lysc_node *voucher = tree->schema;
    cr_assert_str_eq(voucher->name, "voucher");
    size_t i = 0;
    const struct lysc_node *leaf;
    LY_LIST_FOR(lysc_node_child(voucher), leaf)
    {
        cr_assert(i < sizeof(rfc) / sizeof(rfc[0]), "extra leaf %s", leaf->name);
        cr_assert_str_eq(leaf->name, rfc[i].name);
        cr_assert_eq(leaf->nodetype, LYS_LEAF);
        const struct lysc_type *t = ((const struct lysc_node_leaf *)leaf)->type;
        if (rfc[i].typedef_plugin)
            cr_assert(strstr(t->plugin->id, rfc[i].typedef_plugin), "%s: %s", leaf->name, t->plugin->id);
        else
            cr_assert_eq(t->basetype, rfc[i].type, "%s", leaf->name);
        cr_assert_eq(!!(leaf->flags & LYS_MAND_TRUE), rfc[i].mandatory, "%s", leaf->name);
        i++;
    }
    cr_assert_eq(i, sizeof(rfc) / sizeof(rfc[0]));
    const struct lysc_type_enum *assertion =
        (const void *)((const struct lysc_node_leaf *)lysc_node_child(voucher)->next->next)->type;
    cr_assert_eq(LY_ARRAY_COUNT(assertion->enums), 3);
    cr_assert_str_eq(assertion->enums[0].name, "verified");
    cr_assert_str_eq(assertion->enums[1].name, "logged");
    cr_assert_str_eq(assertion->enums[2].name, "proximity");
    lyd_free_all(tree);
}
