#ifndef MASAD_EDGE_H
#define MASAD_EDGE_H
/*
 * edge/: the HTTPS front of the service (h2o). Event-loop threads terminate
 * TLS, parse HTTP/1.1 and HTTP/2, route, enforce body limits, answer
 * /healthz, /readyz and /metrics themselves, and hand every other request
 * to the job threads through a bounded queue. The loops never block.
 */
#include <libyang/libyang.h>

#include "common/config.h"
#include "common/error.h"

struct crypto_signer;
struct crypto_anchors;

/* Serves both listeners until SIGTERM or SIGINT, then stops accepting, lets
 * accepted requests finish within the configured grace and returns 0 (1 when
 * the grace ran out with requests unanswered). Startup failures return -1
 * with err filled. Must be called from the main thread. */
int edge_serve(const struct config *cfg, struct crypto_signer *signer,
               const struct crypto_anchors *idevid, const struct ly_ctx *yang,
               struct masad_error *err);

/* `masad health`: asks /readyz on the management listener (a wildcard
 * address is reached on loopback) within two seconds; 0 when ready. */
int edge_probe_ready(const struct config *cfg, char *why, size_t why_len);

#endif
