#ifndef MASAD_COMMON_YANG_H
#define MASAD_COMMON_YANG_H
/*
 * The one libyang context of the process: every module of yang/ (carried in
 * the binary) compiled at start. Once built it is shared read-only by all
 * threads; data trees are per thread.
 */
#include <libyang/libyang.h>

#include "common/arena.h"
#include "common/error.h"

/* Builds the context with every module masad validates against. */
int yang_context_new(struct ly_ctx **out, struct masad_error *err);

/* Moves libyang's stored errors for ctx (of this thread) into err, prefixed
 * by `what`, with the given status and code; returns -1. */
int yang_error(const struct ly_ctx *ctx, struct masad_error *err, int status,
               const char *code, const char *what);

/* Finds the yang-data (rc:yang-data) or structure extension instance `name`
 * of module `module`, or NULL. */
const struct lysc_ext_instance *yang_data_ext(const struct ly_ctx *ctx, const char *module,
                                              const char *name);


/* Parses and validates text (JSON or XML) as an instance of the yang-data /
 * structure `name` of `module`. On failure err holds libyang's reason and
 * where (if not NULL, at least 256 bytes) the data path of the fault, or "". */
int yang_check_data(const struct ly_ctx *ctx, const char *module, const char *name,
                    LYD_FORMAT format, const char *text, char *where, struct masad_error *err);

/* The yang-data instance text in another encoding (JSON ↔ XML), in `a`;
 * NULL when it does not parse. */
const char *yang_convert_data(const struct ly_ctx *ctx, const char *module, const char *name,
                              LYD_FORMAT from, const char *text, LYD_FORMAT to, struct arena *a);

#endif
