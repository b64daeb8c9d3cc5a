#ifndef MASAD_ADMIN_H
#define MASAD_ADMIN_H
/*
 * admin/: the management API of docs/management-api.md (the contract external
 * systems code against) on the management listener, and the `masad token`
 * commands. Every handler authenticates the bearer token against the
 * database on each call (a revoked token fails at once on every replica),
 * validates all input before changing anything, and appends audit events
 * in the transaction of the change.
 */
#include <stdio.h>

#include "common/request.h"

#define ADMIN_MAX_BODY (1024 * 1024)
#define ADMIN_MAX_BATCH_BODY (16 * 1024 * 1024)

void admin_device_put(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_device_get(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_device_list(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_device_batch(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_owner_put(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_owner_get(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_owner_list(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_owner_delete(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_ownership_put(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_ownership_delete(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_ownership_get(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_ownership_batch(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_voucher_list(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_progress_list(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_audit_list(struct job_ctx *, const struct masad_request *, struct masad_response *);
void admin_checkpoint_list(struct job_ctx *, const struct masad_request *, struct masad_response *);

struct admin_token_args {
    const char *command;    /* "create", "list" or "revoke" */
    const char *name;       /* create, revoke */
    const char *scopes;     /* create: comma-separated scope names */
    const char *expires;    /* create: RFC 3339 time or a duration ("90d"); NULL: never */
};

/* `masad token create|list|revoke` against the database at url; output to
 * out, errors to err. Input is checked before the database is reached.
 * Returns the process exit status (2 for bad input). */
int admin_token_command(const char *url, const struct admin_token_args *args, FILE *out,
                        FILE *err);
/* Checks a create's name, scopes and expiry without a database; on a fault
 * prints the sentence to err and returns 2. expires_at receives the expiry
 * as RFC 3339 UTC, "" for none. */
int admin_token_check(const struct admin_token_args *args, char expires_at[32], FILE *err);

#endif
