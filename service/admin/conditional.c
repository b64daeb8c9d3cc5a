/* Conditional requests for the device and owner resources: every answer
 * that carries a representation carries its ETag, and PUT/DELETE honour
 * If-Match, so that two systems editing one resource do not overwrite each
 * other unseen (RFC 9110 §13.1.1, the "lost update" problem). */
#include <string.h>

#include "admin/admin_internal.h"
#include "common/encoding.h"

/* RFC 9110 §8.8.3: a strong validator changes whenever the representation
 * does; a digest of the representation's bytes is one by construction. */
const char *etag_of(struct call *c, const char *body, size_t len)
{
    return arena_printf(c->a, "\"%.32s\"", hex_sha256(c->a, body, len));
}

/* RFC 9110 §13.1.1: "*" holds when a current representation exists; else
 * one of the listed entity-tags must equal the current one by the strong
 * comparison (§8.8.3.2), so a weak tag (W/"...") never holds. A malformed
 * field holds for nothing. */
bool if_match_holds(const char *field, const char *current)
{
    const char *p = field;
    for (;;) {
        p += strspn(p, " \t,");
        if (!*p)
            return false;
        if (*p == '*')
            return current != NULL;
        bool weak = !strncmp(p, "W/", 2);
        if (weak)
            p += 2;
        if (*p != '"')
            return false;
        const char *close = strchr(p + 1, '"');
        if (!close)
            return false;
        size_t len = (size_t)(close - p) + 1;
        if (!weak && current && strlen(current) == len && !strncmp(p, current, len))
            return true;
        p = close + 1;
    }
}

bool call_check_if_match(struct call *c, const char *current)
{
    if (!c->req->if_match || if_match_holds(c->req->if_match, current))
        return true;
    if (!current)
        return call_refuse(c, 412, "If-Match: the resource does not exist, so no entity-tag "
                                   "matches (RFC 9110 §13.1.1); nothing was changed");
    return call_refuse(c, 412, "If-Match: the resource has changed, its ETag is now %s "
                               "(RFC 9110 §13.1.1); nothing was changed", current);
}

const char *row_etag(struct call *c, const void *row, row_writer write)
{
    if (!row)
        return NULL;
    yajl_gen g = json_gen_new();
    write(c, g, row);
    size_t len;
    const char *body = json_finish(g, c->a, &len);
    return etag_of(c, body, len);
}

void call_answer_tagged(struct call *c, int status, yajl_gen g)
{
    call_answer_json(c, status, g);
    response_add_header(c->res, "etag",
                        etag_of(c, (const char *)c->res->body, c->res->body_len));
}
