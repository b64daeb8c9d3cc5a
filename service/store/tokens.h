#ifndef MASAD_STORE_TOKENS_H
#define MASAD_STORE_TOKENS_H
/* Management API tokens (table api_tokens; docs/management-api.md). Only a
 * token's SHA-256 is stored. */
#include <stdbool.h>

#include "store/store.h"

/* A token as the API sees it on a call. */
struct store_token_auth {
    const char *name;
    const char *scopes;        /* comma-separated */
    bool touch_due;            /* last use unrecorded for over a minute */
};

/* The active (not revoked, not expired) token with that SHA-256: 1 and *out,
 * 0 when there is none, -1 on error. */
int store_token_lookup(struct store_conn *c, struct arena *a, const unsigned char sha256[32],
                       struct store_token_auth *out, struct masad_error *err);
/* Records the token's use now, unless recorded within the last minute. */
int store_token_touch(struct store_conn *c, struct arena *a, const char *name,
                      struct masad_error *err);

/* 1 when created, 0 when the name exists already, -1 on error. expires_at:
 * RFC 3339, or NULL or "" for never. */
int store_token_create(struct store_conn *c, struct arena *a, const char *name,
                       const unsigned char sha256[32], const char *scopes, const char *expires_at,
                       struct masad_error *err);
/* 1 when an active token of that name was revoked, 0 when none, -1 on error. */
int store_token_revoke(struct store_conn *c, struct arena *a, const char *name,
                       struct masad_error *err);

/* A token in the listing; times are RFC 3339 UTC, NULL when not set. */
struct store_token {
    const char *name, *scopes, *created_at, *revoked_at, *expires_at, *last_used_at;
    bool expired;
};
/* Every token, by name, in a. */
int store_token_list(struct store_conn *c, struct arena *a, struct store_token **out,
                     size_t *count, struct masad_error *err);

#endif
