#include <stdio.h>
#include <string.h>

#include "edge/edge_internal.h"

#define BOTH (LISTENER_DEVICE | LISTENER_MANAGEMENT)

/* Every route of the service. Protocol issues add their rows here. */
const struct route edge_routes[] = {
    {"/healthz", BOTH, "GET", "/healthz", false, 0, ERRORS_PLAIN, NULL, edge_healthz},
    {"/readyz", BOTH, "GET", "/readyz", false, 0, ERRORS_PLAIN, NULL, edge_readyz},
    {"/metrics", BOTH, "GET", "/metrics", false, 0, ERRORS_PLAIN, NULL, edge_metrics},
#ifdef MASAD_TEST_ROUTES
    {"/_test/identity", BOTH, "GET", "/_test/identity", false, 0, ERRORS_PLAIN, test_identity, NULL},
    {"/_test/echo", BOTH, "POST", "/_test/echo", false, 1024, ERRORS_PLAIN, test_echo, NULL},
    {"/_test/echo-problem", LISTENER_MANAGEMENT, "POST", "/_test/echo-problem", false, 1024,
     ERRORS_PROBLEM, test_echo, NULL},
    {"/_test/large", BOTH, "POST", "/_test/large", false, 256 * 1024, ERRORS_PLAIN, test_echo, NULL},
    {"/_test/sleep", BOTH, "GET", "/_test/sleep", false, 0, ERRORS_PLAIN, test_sleep, NULL},
    {"/_test/db", BOTH, "GET", "/_test/db", false, 0, ERRORS_PLAIN, test_db, NULL},
    {"/_test/sign", BOTH, "POST", "/_test/sign", false, 65536, ERRORS_PLAIN, test_sign, NULL},
#endif
};
const size_t edge_route_count = sizeof(edge_routes) / sizeof(edge_routes[0]);

static bool path_matches(const struct route *r, const char *path, size_t len)
{
    size_t n = strlen(r->path);
    if (r->prefix)
        return len >= n && !memcmp(path, r->path, n);
    return len == n && !memcmp(path, r->path, n);
}

int route_find(enum listener_kind listener, const char *method, size_t method_len,
               const char *path, size_t path_len, char *allow, size_t allow_len)
{
    allow[0] = '\0';
    for (size_t i = 0; i < edge_route_count; i++) {
        const struct route *r = &edge_routes[i];
        if (!(r->listeners & listener) || !path_matches(r, path, path_len))
            continue;
        if (strlen(r->method) == method_len && !memcmp(r->method, method, method_len))
            return (int)i;
        size_t used = strlen(allow);
        snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", r->method);
    }
    return -1;
}

size_t route_max_body(void)
{
    size_t max = 0;
    for (size_t i = 0; i < edge_route_count; i++)
        if (edge_routes[i].max_body > max)
            max = edge_routes[i].max_body;
    return max;
}
