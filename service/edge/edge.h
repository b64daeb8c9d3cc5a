#ifndef MASAD_EDGE_H
#define MASAD_EDGE_H
/*
 * edge/: the HTTPS front of the service (h2o). Event-loop threads terminate
 * TLS, parse HTTP/1.1 and HTTP/2, route, enforce body limits, answer
 * /healthz, /readyz and /metrics themselves, and hand every other request
 * to the job runtime (runtime/runtime.h) through its bounded queue. The
 * loops never block. The edge uses neither the database nor masad's
 * crypto/: what it needs of them comes in through struct edge_services.
 */
#include "common/config.h"
#include "common/error.h"

struct arena;
struct runtime;
struct x509_st;

/* A certificate's subject as text in `a` (crypto_cert_subject). */
typedef const char *edge_cert_subject(struct x509_st *cert, struct arena *a);

/* What main.c wires into the edge. */
struct edge_services {
    struct runtime *runtime;          /* started; stopped by the caller after edge_serve */
    edge_cert_subject *cert_subject;  /* names the client in the access log */
};

/* Blocks SIGTERM and SIGINT in the calling thread and so in every thread
 * it starts afterwards: call it before starting the runtime, so that only
 * edge_serve sees them. */
void edge_block_signals(void);

/* Serves both listeners until SIGTERM or SIGINT, then stops accepting, lets
 * accepted requests finish within the configured grace and returns 0 (1 when
 * the grace ran out with requests unanswered). Startup failures return -1
 * with err filled. Must be called from the main thread, after
 * edge_block_signals. */
int edge_serve(const struct config *cfg, const struct edge_services *services,
               struct masad_error *err);

/* `masad health`: asks /readyz on the management listener (a wildcard
 * address is reached on loopback) within two seconds; 0 when ready. */
int edge_probe_ready(const struct config *cfg, char *why, size_t why_len);

#endif
