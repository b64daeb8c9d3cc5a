/* `masad token create|list|revoke`: management API tokens. A token is 256
 * random bits shown once; only its SHA-256 is stored (docs/management-api.md). */
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin/admin_internal.h"

static const char *const scopes[] = {"devices:read",    "devices:write", "owners:read",
                                     "owners:write",    "ownership:write", "audit:read", NULL};

static bool scopes_valid(const char *list, FILE *err)
{
    char *copy = strdup(list), *save = NULL;
    bool ok = *list != 0;
    for (char *s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        bool known = false;
        for (const char *const *k = scopes; *k && !known; k++)
            known = !strcmp(*k, s);
        if (!known) {
            fprintf(err, "masad: unknown scope %s (known: devices:read, devices:write, "
                         "owners:read, owners:write, ownership:write, audit:read)\n", s);
            ok = false;
        }
    }
    free(copy);
    return ok;
}

static const char *arg(int argc, char **argv, const char *name)
{
    for (int i = 3; i + 1 < argc; i++)
        if (!strcmp(argv[i], name))
            return argv[i + 1];
    return NULL;
}

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[32];
    unsigned int n;
    EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* "msd_" + base64url of 32 random bytes */
static void new_token(char out[64])
{
    unsigned char raw[32];
    RAND_bytes(raw, sizeof(raw));
    char b64[48];
    EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw));
    OPENSSL_cleanse(raw, sizeof(raw));
    size_t n = strcspn(b64, "=");
    for (size_t i = 0; i < n; i++)
        b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    snprintf(out, 64, "msd_%.*s", (int)n, b64);
    OPENSSL_cleanse(b64, sizeof(b64));
}

static const char *cli_actor(struct arena *a)
{
    struct passwd *pw = getpwuid(getuid());
    return arena_printf(a, "cli:%s", pw ? pw->pw_name : "unknown");
}

static int create_token(struct store_conn *db, struct arena *a, int argc, char **argv, FILE *out,
                  FILE *err)
{
    const char *name = arg(argc, argv, "--name"), *scope = arg(argc, argv, "--scope");
    if (!name || !scope) {
        fprintf(err, "usage: masad token create --name NAME --scope SCOPE[,SCOPE...]\n");
        return 2;
    }
    if (!scopes_valid(scope, err))
        return 2;
    char token[64], hash[65];
    new_token(token);
    sha256_hex(token, hash);
    struct masad_error e;
    PGresult *r;
    const char *params[] = {name, hash, scope};
    struct audit_event ev = {cli_actor(a), "token.create", NULL, NULL, "ok",
                             arena_printf(a, "{\"name\": \"%s\", \"scopes\": \"%s\"}", name, scope)};
    if (store_begin(db, &e) != 0 || store_exec(db, a, "token_create", 3, params, &r, &e) != 0) {
        fprintf(err, "masad: %s\n", e.message);
        return 1;
    }
    if (PQntuples(r) != 1) {
        store_rollback(db);
        fprintf(err, "masad: a token named %s exists already (names are never reused)\n", name);
        return 1;
    }
    if (audit_append(db, a, &ev, &e) != 0 || store_commit(db, &e) != 0) {
        fprintf(err, "masad: %s\n", e.message);
        return 1;
    }
    fprintf(out, "%s\n", token);
    OPENSSL_cleanse(token, sizeof(token));
    return 0;
}

static int list_tokens(struct store_conn *db, struct arena *a, FILE *out, FILE *err)
{
    struct masad_error e;
    PGresult *r;
    if (store_exec(db, a, "token_list", 0, NULL, &r, &e) != 0) {
        fprintf(err, "masad: %s\n", e.message);
        return 1;
    }
    fprintf(out, "%-24s %-21s %-21s %s\n", "NAME", "CREATED", "REVOKED", "SCOPES");
    for (int i = 0; i < PQntuples(r); i++)
        fprintf(out, "%-24s %-21s %-21s %s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 2),
                PQgetisnull(r, i, 3) ? "-" : PQgetvalue(r, i, 3), PQgetvalue(r, i, 1));
    return 0;
}

static int revoke_token(struct store_conn *db, struct arena *a, int argc, char **argv, FILE *out,
                  FILE *err)
{
    if (argc < 4) {
        fprintf(err, "usage: masad token revoke NAME\n");
        return 2;
    }
    struct masad_error e;
    PGresult *r;
    const char *params[] = {argv[3]};
    struct audit_event ev = {cli_actor(a), "token.revoke", NULL, NULL, "ok",
                             arena_printf(a, "{\"name\": \"%s\"}", argv[3])};
    if (store_begin(db, &e) != 0 || store_exec(db, a, "token_revoke", 1, params, &r, &e) != 0) {
        fprintf(err, "masad: %s\n", e.message);
        return 1;
    }
    if (PQntuples(r) != 1) {
        store_rollback(db);
        fprintf(err, "masad: no active token named %s\n", argv[3]);
        return 1;
    }
    if (audit_append(db, a, &ev, &e) != 0 || store_commit(db, &e) != 0) {
        fprintf(err, "masad: %s\n", e.message);
        return 1;
    }
    fprintf(out, "revoked %s\n", argv[3]);
    return 0;
}

int admin_token_command(const char *url, int argc, char **argv, FILE *out, FILE *err)
{
    const char *sub = argc > 2 ? argv[2] : "";
    if (strcmp(sub, "create") && strcmp(sub, "list") && strcmp(sub, "revoke")) {
        fprintf(err, "usage: masad token create --name NAME --scope S[,S...] | list | revoke NAME\n");
        return 2;
    }
    struct store_options so = {url, 5, 10000};
    struct store_conn *db;
    struct masad_error e;
    if (store_connect(&so, &db, &e) != 0) {
        fprintf(err, "masad: %s\n", e.message);
        store_close(db);
        return 1;
    }
    struct arena *a = arena_new();
    int rc = !strcmp(sub, "create") ? create_token(db, a, argc, argv, out, err)
             : !strcmp(sub, "list") ? list_tokens(db, a, out, err)
                                    : revoke_token(db, a, argc, argv, out, err);
    arena_free(a);
    store_close(db);
    return rc;
}
