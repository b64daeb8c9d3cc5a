#include <stdio.h>
#include <string.h>

#include "admin/admin.h"
#include "common/metrics.h"
#include "brski/brski.h"
#include "sztp/sztp.h"
#include "edge/edge_internal.h"

#define BOTH (LISTENER_DEVICE | LISTENER_MANAGEMENT)

/* Every route of the service. Protocol issues add their rows here. */
const struct route edge_routes[] = {
    {"/healthz", BOTH, "GET", "/healthz", 0, ERRORS_PLAIN, NULL, edge_healthz},
    {"/readyz", BOTH, "GET", "/readyz", 0, ERRORS_PLAIN, NULL, edge_readyz},
    {"/metrics", BOTH, "GET", "/metrics", 0, ERRORS_PLAIN, NULL, edge_metrics},
    /* RFC 8995 §5.5, §5.8 */
    {"/.well-known/brski/requestvoucher", LISTENER_DEVICE, "POST",
     "/.well-known/brski/requestvoucher", 2 * BRSKI_MAX_BODY, ERRORS_PLAIN, brski_request_voucher, NULL},
    {"/.well-known/brski/requestauditlog", LISTENER_DEVICE, "POST",
     "/.well-known/brski/requestauditlog", 2 * BRSKI_MAX_BODY, ERRORS_PLAIN, brski_request_audit_log,
     NULL},
    /* RFC 8572 §7 as RESTCONF RPCs (RFC 8040 §3.6); RFC 8040 §3.1 discovery */
    {"/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data", LISTENER_DEVICE,
     "POST", "/restconf/operations/ietf-sztp-bootstrap-server:get-bootstrapping-data",
     2 * SZTP_MAX_BODY, ERRORS_PLAIN, sztp_get_bootstrapping_data, NULL},
    {"/restconf/operations/ietf-sztp-bootstrap-server:report-progress", LISTENER_DEVICE, "POST",
     "/restconf/operations/ietf-sztp-bootstrap-server:report-progress", 2 * SZTP_MAX_BODY,
     ERRORS_PLAIN, sztp_report_progress, NULL},
    {"/.well-known/host-meta", LISTENER_DEVICE, "GET", "/.well-known/host-meta", 0, ERRORS_PLAIN,
     NULL, edge_host_meta},
#define MGMT(method, path, max_body, handler) \
    {path, LISTENER_MANAGEMENT, method, path, max_body, ERRORS_PROBLEM, handler, NULL}
    /* docs/management-api.md; docs/openapi.json lists the same set (tested) */
    MGMT("PUT", "/api/v1/devices/{serial_number}", ADMIN_MAX_BODY, admin_device_put),
    MGMT("GET", "/api/v1/devices/{serial_number}", 0, admin_device_get),
    MGMT("GET", "/api/v1/devices", 0, admin_device_list),
    MGMT("POST", "/api/v1/devices:batch", ADMIN_MAX_BATCH_BODY, admin_device_batch),
    MGMT("PUT", "/api/v1/owners/{owner_id}", ADMIN_MAX_BODY, admin_owner_put),
    MGMT("GET", "/api/v1/owners/{owner_id}", 0, admin_owner_get),
    MGMT("DELETE", "/api/v1/owners/{owner_id}", 0, admin_owner_delete),
    MGMT("GET", "/api/v1/owners", 0, admin_owner_list),
    MGMT("PUT", "/api/v1/devices/{serial_number}/ownership", ADMIN_MAX_BODY, admin_ownership_put),
    MGMT("DELETE", "/api/v1/devices/{serial_number}/ownership", 0, admin_ownership_delete),
    MGMT("GET", "/api/v1/devices/{serial_number}/ownership", 0, admin_ownership_get),
    MGMT("POST", "/api/v1/ownership:batch", ADMIN_MAX_BATCH_BODY, admin_ownership_batch),
    MGMT("GET", "/api/v1/devices/{serial_number}/vouchers", 0, admin_voucher_list),
    MGMT("GET", "/api/v1/devices/{serial_number}/progress", 0, admin_progress_list),
    MGMT("GET", "/api/v1/audit", 0, admin_audit_list),
    MGMT("GET", "/api/v1/audit/checkpoints", 0, admin_checkpoint_list),
    /* the API's own description, for client generators: no token needed */
    {"/api/v1/openapi.json", LISTENER_MANAGEMENT, "GET", "/api/v1/openapi.json", 0,
     ERRORS_PROBLEM, NULL, edge_openapi},
#ifdef MASAD_TEST_ROUTES
    {"/_test/identity", BOTH, "GET", "/_test/identity", 0, ERRORS_PLAIN, test_identity, NULL},
    {"/_test/echo", BOTH, "POST", "/_test/echo", 1024, ERRORS_PLAIN, test_echo, NULL},
    {"/_test/echo-problem", LISTENER_MANAGEMENT, "POST", "/_test/echo-problem", 1024,
     ERRORS_PROBLEM, test_echo, NULL},
    {"/_test/large", BOTH, "POST", "/_test/large", 256 * 1024, ERRORS_PLAIN, test_echo, NULL},
    {"/_test/sleep", BOTH, "GET", "/_test/sleep", 0, ERRORS_PLAIN, test_sleep, NULL},
    {"/_test/db", BOTH, "GET", "/_test/db", 0, ERRORS_PLAIN, test_db, NULL},
    {"/_test/log", BOTH, "GET", "/_test/log", 0, ERRORS_PLAIN, test_log, NULL},
    {"/_test/sign", BOTH, "POST", "/_test/sign", 65536, ERRORS_PLAIN, test_sign, NULL},
#endif
};
const size_t edge_route_count = sizeof(edge_routes) / sizeof(edge_routes[0]);

/* Walks pattern and path together; each {name} in the pattern takes one
 * non-empty segment of the path. Calls on_param for each such segment. */
static bool walk(const char *pattern, const char *path, size_t len,
                 void (*on_param)(void *, const char *, size_t), void *data)
{
    size_t i = 0;
    while (*pattern) {
        if (*pattern == '{') {
            const char *close = strchr(pattern, '}');
            size_t start = i;
            while (i < len && path[i] != '/')
                i++;
            if (i == start)
                return false;
            if (on_param)
                on_param(data, path + start, i - start);
            pattern = close + 1;
        } else if (i < len && path[i] == *pattern) {
            i++;
            pattern++;
        } else
            return false;
    }
    return i == len;
}

static bool path_matches(const struct route *r, const char *path, size_t len)
{
    return walk(r->path, path, len, NULL, NULL);
}

struct capture {
    struct arena *arena;
    struct masad_request *req;
};

static void capture_param(void *data, const char *segment, size_t len)
{
    struct capture *c = data;
    if (c->req->param_count < REQUEST_MAX_PARAMS)
        c->req->params[c->req->param_count++] = arena_strndup(c->arena, segment, len);
}

void route_params(const struct route *r, const char *path, size_t path_len, struct arena *a,
                  struct masad_request *req)
{
    struct capture c = {a, req};
    req->param_count = 0;
    walk(r->path, path, path_len, capture_param, &c);
}

static bool method_is(const char *method, size_t len, const char *name)
{
    return strlen(name) == len && !memcmp(method, name, len);
}

/* RFC 9110 §9.3.2: HEAD wherever GET is, answered by the GET route. */
int route_find(enum listener_kind listener, const char *method, size_t method_len,
               const char *path, size_t path_len, char *allow, size_t allow_len)
{
    allow[0] = '\0';
    bool head = method_is(method, method_len, "HEAD");
    for (size_t i = 0; i < edge_route_count; i++) {
        const struct route *r = &edge_routes[i];
        if (!(r->listeners & listener) || !path_matches(r, path, path_len))
            continue;
        if (method_is(method, method_len, r->method) || (head && !strcmp(r->method, "GET")))
            return (int)i;
        size_t used = strlen(allow);
        snprintf(allow + used, allow_len - used, "%s%s%s", used ? ", " : "", r->method,
                 strcmp(r->method, "GET") ? "" : ", HEAD");
    }
    return -1;
}

void route_metrics_init(void)
{
    static const char *names[METRICS_MAX_ROUTES], *methods[METRICS_MAX_ROUTES];
    size_t n = edge_route_count;
    if (n > METRICS_MAX_ROUTES - 1)
        n = METRICS_MAX_ROUTES - 1;
    for (size_t i = 0; i < n; i++) {
        names[i] = edge_routes[i].name;
        methods[i] = edge_routes[i].method;
    }
    names[n] = "unmatched";
    methods[n] = "";
    metrics_init(names, methods, n + 1);
}

size_t route_max_body(enum listener_kind listener)
{
    size_t max = 0;
    for (size_t i = 0; i < edge_route_count; i++)
        if ((edge_routes[i].listeners & listener) && edge_routes[i].max_body > max)
            max = edge_routes[i].max_body;
    return max;
}
