#ifndef MASAD_ADMIN_INTERNAL_H
#define MASAD_ADMIN_INTERNAL_H
/* Folder-private to admin/. */
#include <stdbool.h>
#include <yajl/yajl_gen.h>

#include "admin/admin.h"
#include "audit/audit.h"
#include "common/json.h"
#include "store/audit.h"
#include "store/devices.h"
#include "store/owners.h"
#include "store/ownership.h"
#include "store/tokens.h"

#define ADMIN_MAX_ERRORS 16
#define ADMIN_MAX_QUERY 8

/* docs/management-api.md, Conventions: the identifiers' rules, as error details */
#define SERIAL_NUMBER_RULE                                                        \
    "must be 1 to 64 characters of text without control characters and without " \
    "a leading or trailing space"
#define OWNER_ID_RULE "must be 1 to 64 of a-z 0-9 . _ -"

/* One management call in progress. */
struct call {
    struct job_ctx *ctx;
    struct arena *a;
    const struct masad_request *req;
    struct masad_response *res;
    const char *actor;          /* the token's name once authenticated */
    const char *action;         /* audit action of this call, for refusals */
    const char *serial;         /* subject of the call, for refusals */
    const char *owner;
    struct {
        const char *pointer;    /* a JSON pointer into the body, or ... */
        const char *parameter;  /* ... the name of a query parameter */
        const char *detail;
    } errors[ADMIN_MAX_ERRORS];
    size_t error_count;
    struct {
        const char *name, *value;
    } query[ADMIN_MAX_QUERY];   /* read by call_read_query() */
    size_t query_count;
};

void call_init(struct call *c, struct job_ctx *ctx, const struct masad_request *req,
               struct masad_response *res, const char *action);

/* Authenticates the bearer token and checks the scope. false: the answer
 * (401/403) is written. */
bool call_authorize(struct call *c, const char *scope);

/* Content type, size and JSON well-formedness (docs/management-api.md, Conventions).
 * false: the answer (415/413/400, or 422 naming a string that is not valid
 * Unicode) is written. */
bool call_read_json(struct call *c, size_t max_body, struct json_value **out);
/* The same for a batch: the root member `list` must be an array of at most
 * max_items objects. Parsing stops at the first breach, with a 422 naming
 * the list (list_rule says what it must be) or, after ADMIN_MAX_ERRORS items
 * that are not objects, the first of them, so that a hostile body costs
 * memory for the items accepted only. */
bool call_read_batch(struct call *c, size_t max_body, const char *list, size_t max_items,
                     const char *list_rule, struct json_value **out);

/* Collects a field error; call_refuse() sends them all. */
void call_field_error(struct call *c, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Collects an error of the query parameter `name`. */
void call_param_error(struct call *c, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* call_refuse() with 422 for the collected parameter errors: the sentence is
 * "<name> <detail>" for one error. Returns false. */
bool call_refuse_parameters(struct call *c);

/* Answers a problem with the collected field errors, rolls back anything
 * begun, and (for an authenticated caller) records the refusal in the
 * audit log. Always returns false, for `return call_refuse(...)`. */
bool call_refuse(struct call *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* For a store/audit error: 503 or 500 as err says. */
bool call_fail(struct call *c, const struct masad_error *err);

/* Answers status with the JSON that g holds (freed). */
void call_answer_json(struct call *c, int status, yajl_gen g);
void call_answer_empty(struct call *c, int status);

/* Only these members allowed in obj; unknown ones are field errors.
 * Returns true when none. */
bool check_members(struct call *c, const struct json_value *obj, const char *pointer,
                   const char *const *allowed);
/* Member `key` must be a string (or absent when optional). */
const char *member_string(struct call *c, const struct json_value *obj, const char *pointer,
                          const char *key, bool required, size_t max_len);

/* docs/management-api.md: serial_number is 1-64 characters of UTF-8 text without control
 * characters or outer spaces; owner_id 1-64 of a-z 0-9 . _ - */
bool serial_number_valid(const char *s);
bool owner_id_valid(const char *s);

/* The path parameter i, percent-decoded; NULL when badly encoded. */
const char *path_param(struct call *c, size_t i);
/* Reads the query (API.md, Paging): each parameter must be one of `allowed`
 * (NULL-terminated; NULL: none), given once, percent-encoded correctly
 * (RFC 3986 §2.1) to valid UTF-8 without NUL. A mistake is never ignored: a
 * filter dropped for a typo or a bad escape would widen the answer. false:
 * the 422 is written, with an error per bad parameter. */
bool call_read_query(struct call *c, const char *const *allowed);
/* A parameter read by call_read_query(), percent-decoded; NULL when absent. */
const char *query_param(struct call *c, const char *name);

/* A listing's query: limit 1..1000 (default 100), an opaque cursor whose key
 * must satisfy key_ok, and the route's filters (NULL-terminated, or NULL),
 * read with call_read_query(). false: the 422 is written. */
bool read_paging(struct call *c, const char *const *filters, bool (*key_ok)(const char *),
                 long *limit, const char **after_key);
/* A cursor key that is a row number (1 to 18 digits). */
bool key_is_number(const char *s);
const char *make_cursor(struct call *c, const char *key);

/* Writes one row (a store/ struct) of a listing or resource. */
typedef void (*row_writer)(struct call *c, yajl_gen g, const void *row);
/* The cursor key of a row. */
typedef const char *(*row_key)(struct call *c, const void *row);
/* Answers {"<name>": [...], "next": cursor|null} for the count rows (each
 * row_size bytes) that the store gave when asked for limit + 1: the extra
 * one says there is a next page, which starts after the last row shown. */
void answer_list(struct call *c, const void *rows, size_t count, size_t row_size, long limit,
                 const char *name, row_writer write, row_key key);
/* A row key that is a row number (long long as the row's first member). */
const char *key_of_id(struct call *c, const void *row);

/* ---- batch.c ---- */
/* A serial number twice in one batch is a 422: names every later entry of
 * list (the batch's member `name`) with the place of the first. Run before
 * the entries are checked, so that the first refusal lists them all. */
void batch_duplicates(struct call *c, const struct json_value *list, const char *name);

/* ---- conditional.c: ETag and If-Match (RFC 9110 §8.8.3, §13.1.1) ---- */
/* The strong ETag of a representation (a digest of its bytes). */
const char *etag_of(struct call *c, const char *body, size_t len);
/* Whether an If-Match field value holds for the current ETag (NULL: the
 * resource has no current representation). */
bool if_match_holds(const char *field, const char *current);
/* true when the request has no If-Match or it holds; else answers 412
 * (rolling back what was begun) and returns false. */
bool call_check_if_match(struct call *c, const char *current);
/* The ETag of the representation that `write` gives of row; NULL when
 * there is no row. */
const char *row_etag(struct call *c, const void *row, row_writer write);
/* Answers status with the JSON that g holds and its ETag. */
void call_answer_tagged(struct call *c, int status, yajl_gen g);

#endif
