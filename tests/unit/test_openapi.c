/*
 * docs/openapi.json and the routes the server serves under /api/ are the
 * same set of (method, path).
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/json.h"
#include "edge/edge_internal.h"

static char *read_doc(size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/docs/openapi.json",
             getenv("MASAD_TEST_ROOT") ? getenv("MASAD_TEST_ROOT") : ".");
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    char *buf = malloc(1 << 20);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

/* docs/openapi.json, parsed into a */
static struct json_value *load_doc(struct arena *a)
{
    size_t len;
    char *text = read_doc(&len);
    struct json_value *doc;
    struct masad_error err;
    cr_assert_eq(json_parse(a, text, len, 64, &doc, &err), 0, "%s", err.message);
    free(text);
    return doc;
}

static bool documented(const struct json_value *paths, const char *method, const char *path)
{
    const struct json_value *item = json_get(paths, path);
    char lower[16];
    size_t i = 0;
    for (; method[i] && i < sizeof(lower) - 1; i++)
        lower[i] = (char)tolower((unsigned char)method[i]);
    lower[i] = 0;
    return item && json_get(item, lower);
}

static bool served(const char *method, const char *path)
{
    for (size_t i = 0; i < edge_route_count; i++)
        if (!strcasecmp(edge_routes[i].method, method) && !strcmp(edge_routes[i].path, path))
            return true;
    return false;
}

Test(openapi, documents_exactly_the_served_management_routes)
{
    struct arena *a = arena_new();
    struct json_value *doc = load_doc(a);
    const struct json_value *paths = json_get(doc, "paths");
    cr_assert(paths && paths->type == JSON_OBJECT);
    size_t api_routes = 0;
    for (size_t i = 0; i < edge_route_count; i++) {
        const struct route *r = &edge_routes[i];
        if (strncmp(r->path, "/api/", 5) != 0)
            continue;
        api_routes++;
        cr_expect(documented(paths, r->method, r->path), "served but not documented: %s %s",
                  r->method, r->path);
    }
    static const char *methods[] = {"get", "put", "post", "delete", "patch", "head", "options"};
    size_t documented_ops = 0;
    for (size_t i = 0; i < paths->count; i++)
        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
            if (json_get(paths->items[i], methods[m])) {
                documented_ops++;
                cr_expect(served(methods[m], paths->keys[i]), "documented but not served: %s %s",
                          methods[m], paths->keys[i]);
            }
    cr_assert_eq(documented_ops, api_routes);
    cr_assert_geq(api_routes, 15);
    arena_free(a);
}

/* Issue 13: every operation is tagged, with tags the document declares. */
Test(openapi, every_operation_has_a_declared_tag)
{
    struct arena *a = arena_new();
    struct json_value *doc = load_doc(a);
    const struct json_value *declared = json_get(doc, "tags"), *paths = json_get(doc, "paths");
    cr_assert(declared && declared->type == JSON_ARRAY && declared->count >= 5);
    static const char *methods[] = {"get", "put", "post", "delete"};
    size_t operations = 0;
    for (size_t i = 0; i < paths->count; i++)
        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
            const struct json_value *op = json_get(paths->items[i], methods[m]);
            if (!op)
                continue;
            operations++;
            const struct json_value *tags = json_get(op, "tags");
            cr_assert(tags && tags->type == JSON_ARRAY && tags->count >= 1, "%s %s has no tags",
                      methods[m], paths->keys[i]);
            for (size_t t = 0; t < tags->count; t++) {
                bool known = false;
                for (size_t k = 0; k < declared->count && !known; k++)
                    known = !strcmp(json_get(declared->items[k], "name")->text, tags->items[t]->text);
                cr_assert(known, "%s %s: tag %s is not declared", methods[m], paths->keys[i],
                          tags->items[t]->text);
            }
        }
    cr_assert_geq(operations, 17);
    arena_free(a);
}
