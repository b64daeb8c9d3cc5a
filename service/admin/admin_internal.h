#ifndef MASAD_ADMIN_INTERNAL_H
#define MASAD_ADMIN_INTERNAL_H
/* Folder-private to admin/. */
#include <stdbool.h>
#include <yajl/yajl_gen.h>

#include "admin/admin.h"
#include "audit/audit.h"
#include "common/json.h"
#include "store/store.h"

#define ADMIN_MAX_ERRORS 16

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
        const char *pointer;
        const char *detail;
    } errors[ADMIN_MAX_ERRORS];
    size_t error_count;
};

void call_init(struct call *c, struct job_ctx *ctx, const struct masad_request *req,
               struct masad_response *res, const char *action);

/* Authenticates the bearer token and checks the scope. false: the answer
 * (401/403) is written. */
bool call_authorize(struct call *c, const char *scope);

/* Content type, size and JSON well-formedness (API.md, Conventions).
 * false: the answer (415/413/400) is written. */
bool call_read_json(struct call *c, size_t max_body, struct json_value **out);

/* Collects a field error; call_refuse() sends them all. */
void call_field_error(struct call *c, const char *pointer, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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

/* API.md: serial_number is 1-64 characters of UTF-8 text without control
 * characters or outer spaces; owner_id 1-64 of a-z 0-9 . _ - */
bool serial_number_valid(const char *s);
bool owner_id_valid(const char *s);

/* The path parameter i, percent-decoded; NULL when badly encoded. */
const char *path_param(struct call *c, size_t i);
/* A query parameter, percent-decoded, or NULL when absent. */
const char *query_param(struct call *c, const char *name);

/* Paging: limit 1..1000 (default 100) and an opaque cursor. false: the
 * 422 is written. */
bool read_paging(struct call *c, long *limit, const char **after_key);
const char *make_cursor(struct call *c, const char *key);

/* Writes one row of a listing. */
typedef void (*row_writer)(struct call *c, yajl_gen g, const PGresult *r, int row);
/* Runs a listing statement (asked for limit + 1 rows; its first column is
 * the cursor key) and answers {"<name>": [...], "next": cursor|null}. */
void answer_list(struct call *c, const char *statement, int nparams, const char **params,
                 long limit, const char *name, row_writer write);

/* A result value, NULL for SQL NULL. */
const char *pq_value(const PGresult *r, int row, int col);

#endif
