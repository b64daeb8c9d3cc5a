/* `masad token create|list|revoke`: management API tokens. A token is 256
 * random bits shown once; only its SHA-256 is stored (docs/management-api.md). */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/encoding.h"
#include "admin/admin_internal.h"

static const char *const scopes[] = {"devices:read",    "devices:write", "owners:read",
                                     "owners:write",    "ownership:write", "audit:read", NULL};
#define SCOPE_LIST "devices:read, devices:write, owners:read, owners:write, ownership:write, " \
                   "audit:read"

static bool scope_known(const char *s, size_t n)
{
    for (const char *const *k = scopes; *k; k++)
        if (strlen(*k) == n && !memcmp(*k, s, n))
            return true;
    return false;
}

static int check_scopes(const char *list, FILE *err)
{
    if (!*list) {
        fprintf(err, "masad: give at least one scope with --scope (the scopes are " SCOPE_LIST
                     ")\n");
        return -1;
    }
    for (const char *p = list; p;) {
        size_t n = strcspn(p, ",");
        if (!scope_known(p, n)) {
            fprintf(err, "masad: unknown scope %.*s (the scopes are " SCOPE_LIST ")\n",
                    n ? (int)(n > 64 ? 64 : n) : 6, n ? p : "(none)");
            return -1;
        }
        p = p[n] ? p + n + 1 : NULL;
    }
    return 0;
}

/* migrations/0001: names are 1 to 64 of [A-Za-z0-9._-] */
static int check_name(const char *name, FILE *err)
{
    size_t n = strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");
    if (n == 0 || name[n] || n > 64) {
        fprintf(err, "masad: a token name is 1 to 64 letters, digits, '.', '_' or '-' "
                     "(not \"%.64s\")\n", name);
        return -1;
    }
    return 0;
}

/* "90d", "12h", "30m", "3600s": from now; at most 10 years */
static bool parse_duration(const char *s, time_t now, time_t *at)
{
    char *end;
    if (*s < '0' || *s > '9')
        return false;
    unsigned long n = strtoul(s, &end, 10);
    long unit = !strcmp(end, "s") ? 1 : !strcmp(end, "m") ? 60 : !strcmp(end, "h") ? 3600
              : !strcmp(end, "d") ? 86400 : 0;
    if (!unit || n == 0 || n > 3650UL * 86400 / (unsigned long)unit)
        return false;
    *at = now + (time_t)n * unit;
    return true;
}

/* RFC 3339 §5.6 date-time: fractions are dropped; the offset is applied. */
static bool parse_rfc3339(const char *s, time_t *at)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p || strlen(s) < 20 || s[4] != '-' || s[10] != 'T')
        return false;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    long offset = 0;
    if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int h, m;
        if (sscanf(p + 1, "%2d:%2d", &h, &m) != 2 || h > 23 || m > 59)
            return false;
        offset = (*p == '+' ? 1 : -1) * (h * 3600L + m * 60L);
    } else if (strcmp(p, "Z") && strcmp(p, "z"))
        return false;
    *at = timegm(&tm) - offset;
    return true;
}

static int check_expiry(const char *expires, char out[32], FILE *err)
{
    out[0] = '\0';
    if (!expires)
        return 0;
    time_t now = time(NULL), at;
    if (!parse_duration(expires, now, &at) && !parse_rfc3339(expires, &at)) {
        fprintf(err, "masad: --expires takes an RFC 3339 time (2027-06-30T00:00:00Z) or a "
                     "duration from now (90d, 12h, 30m, 3600s; at most 10 years), not "
                     "\"%.64s\"\n", expires);
        return -1;
    }
    if (at <= now) {
        fprintf(err, "masad: the expiry %.64s is in the past\n", expires);
        return -1;
    }
    struct tm tm;
    gmtime_r(&at, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return 0;
}

int admin_token_check(const struct admin_token_args *args, char expires_at[32], FILE *err)
{
    expires_at[0] = '\0';
    if (!args->name || (!strcmp(args->command, "create") && !args->scopes)) {
        fprintf(err, "masad: token %s needs %s\n", args->command,
                args->name ? "--scope" : !strcmp(args->command, "create") ? "--name" : "a NAME");
        return 2;
    }
    if (check_name(args->name, err) != 0)
        return 2;
    if (strcmp(args->command, "create"))
        return 0;
    return check_scopes(args->scopes, err) == 0 && check_expiry(args->expires, expires_at, err) == 0
               ? 0 : 2;
}

/* "msd_" + base64url of 32 random bytes */
static void new_token(char out[64])
{
    unsigned char raw[32];
    RAND_bytes(raw, sizeof(raw));
    char b64[48];
    size_t n = base64url_encode_to(raw, sizeof(raw), b64);
    OPENSSL_cleanse(raw, sizeof(raw));
    snprintf(out, 64, "msd_%.*s", (int)n, b64);
    OPENSSL_cleanse(b64, sizeof(b64));
}

static const char *cli_actor(struct arena *a)
{
    struct passwd *pw = getpwuid(getuid());
    return arena_printf(a, "cli:%s", pw ? pw->pw_name : "unknown");
}

static int create_token(struct store_conn *db, struct arena *a,
                        const struct admin_token_args *args, const char *expires_at, FILE *out,
                        FILE *err)
{
    char token[64];
    unsigned char hash[32];
    new_token(token);
    EVP_Digest(token, strlen(token), hash, NULL, EVP_sha256(), NULL);
    struct masad_error e;
    int created;
    struct audit_detail *d = audit_detail_new(a);
    audit_detail_str(d, "name", args->name);
    audit_detail_str(d, "scopes", args->scopes);
    audit_detail_str(d, "expires", *expires_at ? expires_at : NULL);
    struct audit_event ev = {cli_actor(a), "token.create", NULL, NULL, "ok", audit_detail_text(d)};
    if (store_begin(db, &e) != 0 ||
        (created = store_token_create(db, a, args->name, hash, args->scopes, expires_at, &e)) < 0) {
        fprintf(err, "masad: %s\n", e.message);
        return 1;
    }
    if (!created) {
        store_rollback(db);
        fprintf(err, "masad: a token named %s exists already (names are never reused)\n",
                args->name);
        return 1;
    }
    if (audit_append_canonical(db, a, &ev, &e) != 0 || store_commit(db, &e) != 0) {
        fprintf(err, "masad: %s\n", e.message);
        return 1;
    }
    fprintf(out, "%s\n", token);
    OPENSSL_cleanse(token, sizeof(token));
    return 0;
}

static const char *or_never(const char *t)
{
    return t ? t : "never";
}

/* Revoked and expiry-passed tokens are listed with their times; "-" means
 * not revoked, "never" no expiry or no use yet. */
static int list_tokens(struct store_conn *db, struct arena *a, FILE *out, FILE *err)
{
    struct masad_error e;
    struct store_token *t;
    size_t n;
    if (store_token_list(db, a, &t, &n, &e) != 0) {
        fprintf(err, "masad: %s\n", e.message);
        return 1;
    }
    fprintf(out, "%-24s %-21s %-21s %-21s %-21s %s\n", "NAME", "CREATED", "REVOKED", "EXPIRES",
            "LAST USED", "SCOPES");
    for (size_t i = 0; i < n; i++) {
        const char *expires = or_never(t[i].expires_at);
        if (t[i].expired)
            expires = arena_printf(a, "%s(expired)", expires);
        fprintf(out, "%-24s %-21s %-21s %-21s %-21s %s\n", t[i].name, t[i].created_at,
                t[i].revoked_at ? t[i].revoked_at : "-", expires, or_never(t[i].last_used_at),
                t[i].scopes);
    }
    return 0;
}

static int revoke_token(struct store_conn *db, struct arena *a, const char *name, FILE *out,
                        FILE *err)
{
    struct masad_error e;
    int revoked;
    struct audit_detail *d = audit_detail_new(a);
    audit_detail_str(d, "name", name);
    struct audit_event ev = {cli_actor(a), "token.revoke", NULL, NULL, "ok", audit_detail_text(d)};
    if (store_begin(db, &e) != 0 || (revoked = store_token_revoke(db, a, name, &e)) < 0) {
        fprintf(err, "masad: %s\n", e.message);
        return 1;
    }
    if (!revoked) {
        store_rollback(db);
        fprintf(err, "masad: no active token named %s\n", name);
        return 1;
    }
    if (audit_append_canonical(db, a, &ev, &e) != 0 || store_commit(db, &e) != 0) {
        fprintf(err, "masad: %s\n", e.message);
        return 1;
    }
    fprintf(out, "revoked %s\n", name);
    return 0;
}

int admin_token_command(const char *url, const struct admin_token_args *args, FILE *out,
                        FILE *err)
{
    char expires_at[32] = "";
    bool list = !strcmp(args->command, "list");
    if (!list && admin_token_check(args, expires_at, err) != 0)
        return 2;
    struct store_options so = {url, 5, 10000};
    struct store_conn *db;
    struct masad_error e;
    if (store_connect(&so, &db, &e) != 0) {
        fprintf(err, "masad: %s\n", e.message);
        store_close(db);
        return 1;
    }
    struct arena *a = arena_new();
    int rc = list ? list_tokens(db, a, out, err)
             : !strcmp(args->command, "create")
                 ? create_token(db, a, args, expires_at, out, err)
                 : revoke_token(db, a, args->name, out, err);
    arena_free(a);
    store_close(db);
    return rc;
}
