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

/* `masad token create|list|revoke` against the database at url; output to
 * out, errors to err. Returns the process exit status. */
int admin_token_command(const char *url, int argc, char **argv, FILE *out, FILE *err);

#endif
