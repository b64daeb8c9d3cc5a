#ifndef MASAD_SZTP_H
#define MASAD_SZTP_H
/*
 * sztp/: the SZTP bootstrap server of RFC 8572 on the device-facing
 * listener: the RESTCONF RPCs get-bootstrapping-data and report-progress
 * (JSON or XML, RFC 8040), device authentication by IDevID or HTTP Basic,
 * and the owner's conveyed information with, where the owner signed it,
 * the owner certificate and an ownership voucher signed in the HSM.
 */
#include "common/request.h"

#define SZTP_MAX_BODY (256 * 1024)

void sztp_get_bootstrapping_data(struct job_ctx *ctx, const struct masad_request *req,
                                 struct masad_response *res);
void sztp_report_progress(struct job_ctx *ctx, const struct masad_request *req,
                          struct masad_response *res);

#endif
