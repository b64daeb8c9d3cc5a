#include "common/yang.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/embedded.h"

struct module_load {
    const char *name;
    const char *revision;
    const char **features;
};

static const char *sztp_server_features[] = {"redirect-server", "onboarding-server", NULL};

/* What the service validates against; imports are pulled in by libyang. */
static const struct module_load modules[] = {
    {"masad-config", NULL, NULL},
    {"ietf-restconf", "2017-01-26", NULL},
    {"ietf-voucher", "2018-05-09", NULL},
    {"ietf-voucher-request", "2021-05-20", NULL},
    {"ietf-sztp-conveyed-info", "2019-04-30", NULL},
    {"ietf-sztp-bootstrap-server", "2019-04-30", sztp_server_features},
    {"ietf-sztp-csr", "2024-10-10", NULL},
    /* implemented so that its identities resolve in JSON identityref values
     * (csr-support's format-identifier) */
    {"ietf-ztp-types", "2024-10-10", NULL},
};

/* Picks "name@rev.yang", or with no revision asked the newest one. */
static const struct embedded_file *find_module(const char *name, const char *rev)
{
    const struct embedded_file *best = NULL;
    size_t nlen = strlen(name);
    for (size_t i = 0; i < embedded_yang_count; i++) {
        const char *f = embedded_yang[i].name;
        if (strncmp(f, name, nlen) != 0 || f[nlen] != '@')
            continue;
        if (rev && strncmp(f + nlen + 1, rev, strlen(rev)) != 0)
            continue;
        best = &embedded_yang[i]; /* sorted: the last match is the newest */
    }
    return best;
}

static LY_ERR import_module(const char *mod_name, const char *mod_rev, const char *submod_name,
                            const char *submod_rev, void *user_data, LYS_INFORMAT *format,
                            const char **module_data, void (**free_module_data)(void *, void *))
{
    (void)user_data;
    const struct embedded_file *f =
        submod_name ? find_module(submod_name, submod_rev) : find_module(mod_name, mod_rev);
    if (!f)
        return LY_ENOTFOUND;
    *format = LYS_IN_YANG;
    *module_data = (const char *)f->data;
    *free_module_data = NULL;
    return LY_SUCCESS;
}

int yang_context_new(struct ly_ctx **out, struct masad_error *err)
{
    struct ly_ctx *ctx = NULL;
    ly_log_options(LY_LOSTORE);
    if (ly_ctx_new(NULL, LY_CTX_DISABLE_SEARCHDIRS, &ctx) != LY_SUCCESS)
        return error_set(err, 500, "yang", "cannot create the libyang context");
    ly_ctx_set_module_imp_clb(ctx, import_module, NULL);
    for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++) {
        if (!ly_ctx_load_module(ctx, modules[i].name, modules[i].revision, modules[i].features)) {
            char what[128];
            snprintf(what, sizeof(what), "YANG module %s does not load", modules[i].name);
            yang_error(ctx, err, 500, "yang", what);
            ly_ctx_destroy(ctx);
            return -1;
        }
    }
    *out = ctx;
    return 0;
}

int yang_error(const struct ly_ctx *ctx, struct masad_error *err, int status, const char *code,
               const char *what)
{
    const struct ly_err_item *e = ly_err_first(ctx);
    /* the first error is the cause; later ones repeat it with less detail */
    if (e && e->path)
        error_set(err, status, code, "%s: %s (%s)", what, e->msg ? e->msg : "invalid", e->path);
    else if (e)
        error_set(err, status, code, "%s: %s", what, e->msg ? e->msg : "invalid");
    else
        error_set(err, status, code, "%s", what);
    ly_err_clean((struct ly_ctx *)ctx, NULL);
    return -1;
}

const struct lysc_ext_instance *yang_data_ext(const struct ly_ctx *ctx, const char *module,
                                              const char *name)
{
    const struct lys_module *mod = ly_ctx_get_module_implemented(ctx, module);
    if (!mod || !mod->compiled)
        return NULL;
    LY_ARRAY_COUNT_TYPE u;
    LY_ARRAY_FOR(mod->compiled->exts, u)
    {
        const struct lysc_ext_instance *ext = &mod->compiled->exts[u];
        if ((!strcmp(ext->def->name, "yang-data") || !strcmp(ext->def->name, "structure")) &&
            ext->argument && !strcmp(ext->argument, name))
            return ext;
    }
    return NULL;
}

/* libyang puts the data path in its message or path text as "…\"/mod:a/b\"…" */
static void fault_path(const struct ly_err_item *e, char *where)
{
    where[0] = '\0';
    const char *sources[] = {e ? e->path : NULL, e ? e->msg : NULL};
    for (int i = 0; i < 2; i++) {
        const char *q = sources[i] ? strstr(sources[i], "\"/") : NULL;
        if (!q)
            continue;
        const char *end = strchr(q + 1, '"');
        size_t n = end ? (size_t)(end - q - 1) : strlen(q + 1);
        snprintf(where, 256, "%.*s", (int)(n < 255 ? n : 255), q + 1);
        return;
    }
}

/* The schema node of ext's top level that an opaque top-level node names
 * (JSON: "module:name"; XML: the element in the module's namespace). */
static const struct lysc_node *ext_top_node(const struct lysc_ext_instance *ext,
                                            const struct lyd_node *n)
{
    const struct lyd_node_opaq *o = (const struct lyd_node_opaq *)n;
    if (n->schema || !o->name.name)
        return NULL;
    for (const struct lysc_node *s = NULL; (s = lys_getnext_ext(s, NULL, ext, 0));) {
        const char *m = o->name.module_ns;
        if (!strcmp(s->name, o->name.name) && m &&
            (!strcmp(m, s->module->name) || !strcmp(m, s->module->ns)))
            return s;
    }
    return NULL;
}

/* The choice that a top-level node of a yang-data instance belongs to. */
static const struct lysc_node *choice_of(const struct lysc_node *s)
{
    const struct lysc_node *p = s->parent;
    if (p && p->nodetype == LYS_CASE)
        p = p->parent;
    return p && p->nodetype == LYS_CHOICE ? p : NULL;
}

static int choice_clash(const struct lysc_node *a, const struct lysc_node *b,
                        struct masad_error *err)
{
    const struct lysc_node *choice = choice_of(a);
    const char *where = strcmp(a->module->name, "ietf-sztp-conveyed-info")
                            ? a->module->name
                            : "RFC 8572 §6.1, ietf-sztp-conveyed-info";
    if (a == b)
        return error_set(err, 422, "yang",
                         "%s is given twice, but the choice %s holds one case once (%s)",
                         a->name, choice->name, where);
    return error_set(err, 422, "yang",
                     "both %s and %s are given, but they are cases of the choice %s, "
                     "which holds one case (%s)",
                     a->name, b->name, choice->name, where);
}

/* libyang 2.1.30 never returns from parsing a yang-data instance whose top
 * level holds two nodes of one choice (both of conveyed-information's
 * cases, or one case twice). Such text is refused here, before libyang's
 * schema-aware parser sees it; the top-level names come from an opaque
 * parse, which binds no schema and so meets no choice. Text that does not
 * even parse opaquely is refused with libyang's reason. */
static int refuse_choice_clash(const struct ly_ctx *ctx, const struct lysc_ext_instance *ext,
                               LYD_FORMAT format, const char *text, struct masad_error *err)
{
    struct lyd_node *tree = NULL;
    if (lyd_parse_data_mem(ctx, text, format, LYD_PARSE_OPAQ | LYD_PARSE_ONLY, 0, &tree) !=
        LY_SUCCESS) {
        lyd_free_all(tree);
        const struct ly_err_item *e = ly_err_first(ctx);
        error_set(err, 422, "yang", "%s", e && e->msg ? e->msg : "invalid");
        ly_err_clean((struct ly_ctx *)ctx, NULL);
        return -1;
    }
    int rc = 0;
    for (const struct lyd_node *n = tree; n && !rc; n = n->next) {
        const struct lysc_node *a = ext_top_node(ext, n);
        for (const struct lyd_node *m = n->next; a && choice_of(a) && m && !rc; m = m->next) {
            const struct lysc_node *b = ext_top_node(ext, m);
            if (b && choice_of(b) == choice_of(a))
                rc = choice_clash(a, b, err);
        }
    }
    lyd_free_all(tree);
    return rc;
}

/* The one place where yang-data text reaches libyang's schema-aware parser. */
static int parse_ext(const struct ly_ctx *ctx, const struct lysc_ext_instance *ext,
                     LYD_FORMAT format, const char *text, struct lyd_node **tree,
                     struct masad_error *err)
{
    *tree = NULL;
    if (refuse_choice_clash(ctx, ext, format, text, err) != 0)
        return -1;
    struct ly_in *in = NULL;
    if (ly_in_new_memory(text, &in) != LY_SUCCESS)
        return error_set(err, 500, "yang", "out of memory");
    LY_ERR rc = lyd_parse_ext_data(ext, NULL, in, format, LYD_PARSE_STRICT, LYD_VALIDATE_PRESENT,
                                   tree);
    ly_in_free(in, 0);
    if (rc == LY_SUCCESS)
        return 0;
    lyd_free_all(*tree);
    *tree = NULL;
    const struct ly_err_item *e = ly_err_first(ctx);
    error_set(err, 422, "yang", "%s", e && e->msg ? e->msg : "invalid");
    return 1; /* libyang's own refusal: its error (and path) is still stored */
}

int yang_check_data(const struct ly_ctx *ctx, const char *module, const char *name,
                    LYD_FORMAT format, const char *text, char *where, struct masad_error *err)
{
    const struct lysc_ext_instance *ext = yang_data_ext(ctx, module, name);
    if (!ext)
        return error_set(err, 500, "yang", "no yang-data %s in %s", name, module);
    struct lyd_node *tree;
    int rc = parse_ext(ctx, ext, format, text, &tree, err);
    lyd_free_all(tree);
    if (where)
        where[0] = '\0';
    if (rc == 1 && where)
        fault_path(ly_err_first(ctx), where);
    ly_err_clean((struct ly_ctx *)ctx, NULL);
    return rc == 0 ? 0 : -1;
}

const char *yang_convert_data(const struct ly_ctx *ctx, const char *module, const char *name,
                              LYD_FORMAT from, const char *text, LYD_FORMAT to, struct arena *a)
{
    const struct lysc_ext_instance *ext = yang_data_ext(ctx, module, name);
    struct lyd_node *tree = NULL;
    struct masad_error err;
    char *printed = NULL;
    const char *out = NULL;
    if (ext && parse_ext(ctx, ext, from, text, &tree, &err) == 0 &&
        lyd_print_mem(&printed, tree, to, LYD_PRINT_SHRINK | LYD_PRINT_WITHSIBLINGS) == LY_SUCCESS)
        out = arena_strdup(a, printed);
    free(printed);
    lyd_free_all(tree);
    ly_err_clean((struct ly_ctx *)ctx, NULL);
    return out;
}
