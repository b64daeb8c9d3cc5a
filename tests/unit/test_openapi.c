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
    size_t len;
    char *text = read_doc(&len);
    struct arena *a = arena_new();
    struct json_value *doc;
    struct masad_error err;
    cr_assert_eq(json_parse(a, text, len, 64, &doc, &err), 0, "%s", err.message);
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
    free(text);
}
