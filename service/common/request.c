#include "common/request.h"

#include <string.h>

#include "common/json.h"

void response_set(struct masad_response *res, struct arena *a, int status,
                  const char *content_type, const void *body, size_t len)
{
    response_use(res, status, content_type, body ? arena_memdup(a, body, len) : NULL, len);
}

void response_use(struct masad_response *res, int status, const char *content_type,
                  const void *body, size_t len)
{
    res->status = status;
    res->content_type = content_type;
    res->body = body;
    res->body_len = body ? len : 0;
}

void response_text(struct masad_response *res, struct arena *a, int status, const char *text)
{
    char *line = arena_printf(a, "%s\n", text);
    response_set(res, a, status, "text/plain; charset=utf-8", line, strlen(line));
}

void response_add_header(struct masad_response *res, const char *name, const char *value)
{
    if (res->header_count < RESPONSE_MAX_HEADERS) {
        res->headers[res->header_count].name = name;
        res->headers[res->header_count].value = value;
        res->header_count++;
    }
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 409: return "Conflict";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

void response_problem(struct masad_response *res, struct arena *a, int status,
                      const char *detail)
{
    yajl_gen g = json_gen_new();
    json_open(g);
    json_kv_str(g, "type", "about:blank");
    json_kv_str(g, "title", http_reason(status));
    json_kv_int(g, "status", status);
    json_kv_str(g, "detail", detail);
    json_close(g);
    size_t len;
    char *body = json_finish(g, a, &len);
    res->status = status;
    res->content_type = "application/problem+json";
    res->body = (const unsigned char *)body;
    res->body_len = len;
}
