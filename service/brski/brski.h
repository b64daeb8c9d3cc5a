#ifndef MASAD_BRSKI_H
#define MASAD_BRSKI_H
/*
 * brski/: the MASA of RFC 8995 on the device-facing listener. A customer's
 * registrar sends a voucher-request signed by itself that carries the
 * pledge's own signed voucher-request; masad checks both, decides from the
 * ownership records, and answers with a voucher signed in the HSM, or with
 * the RFC 8995 §5.6 status and a sentence saying which check failed.
 */
#include "common/request.h"

/* Voucher-requests are small; the edge allows twice this so that a larger
 * one still reaches the handler and its refusal is audited. */
#define BRSKI_MAX_BODY (64 * 1024)

void brski_request_voucher(struct job_ctx *ctx, const struct masad_request *req,
                           struct masad_response *res);
void brski_request_audit_log(struct job_ctx *ctx, const struct masad_request *req,
                             struct masad_response *res);

#endif
