#include "crypto/pkcs11_uri.h"

#include <openssl/crypto.h>
#include <p11-kit/uri.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* p11-kit knows every attribute of RFC 7512; masad only asks it about each
 * attribute alone, to name the one it refuses. */
static int parse_alone(const char *attribute, size_t len, bool query, P11KitUri **out)
{
    char *uri = NULL;
    *out = p11_kit_uri_new();
    if (asprintf(&uri, "pkcs11:%s%.*s", query ? "?" : "", (int)len, attribute) < 0)
        return P11_KIT_URI_NO_MEMORY;
    int rc = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, *out);
    free(uri);
    return rc;
}

static bool query_known(P11KitUri *u, const char *name)
{
    if (!strncmp(name, "x-", 2))
        return true; /* RFC 7512 §2.3: vendor-specific query attributes */
    return p11_kit_uri_get_pin_value(u) || p11_kit_uri_get_pin_source(u) ||
           p11_kit_uri_get_module_name(u) || p11_kit_uri_get_module_path(u);
}

static int check_one(const char *attribute, size_t len, bool query, struct masad_error *err)
{
    const char *eq = memchr(attribute, '=', len);
    int name_len = eq ? (int)(eq - attribute) : (int)len;
    if (name_len > 64)
        name_len = 64;
    char name[65];
    snprintf(name, sizeof(name), "%.*s", name_len, attribute);
    if (!eq || eq == attribute)
        return error_set(err, 500, "pkcs11-uri",
                         "malformed PKCS#11 URI: \"%s\" is not NAME=VALUE (RFC 7512 §2.3)", name);
    P11KitUri *u;
    int rc = parse_alone(attribute, len, query, &u);
    bool unknown = rc == P11_KIT_URI_OK &&
                   (query ? !query_known(u, name) : p11_kit_uri_any_unrecognized(u));
    bool version = rc == P11_KIT_URI_OK && p11_kit_uri_get_module_info(u)->libraryVersion.major != 255;
    p11_kit_uri_free(u);
    if (rc != P11_KIT_URI_OK)
        return error_set(err, 500, "pkcs11-uri", "malformed PKCS#11 URI: attribute \"%s\": %s",
                         name, p11_kit_uri_message(rc));
    if (unknown)
        return error_set(err, 500, "pkcs11-uri",
                         "unknown PKCS#11 URI attribute \"%s\" (RFC 7512 §2.3)", name);
    if (version || !strcmp(name, "module-name"))
        return error_set(err, 500, "pkcs11-uri",
                         "the PKCS#11 URI attribute \"%s\" is not supported by masad%s", name,
                         version ? "" : ": name the module with module-path");
    return 0;
}

/* RFC 7512 §2.3: an attribute may appear only once. */
static bool seen_before(const char *part, const char *attribute, char sep)
{
    size_t name_len = strcspn(attribute, "=;&");
    for (const char *p = part; p < attribute; p = strchr(p, sep) + 1)
        if (strcspn(p, "=;&?") == name_len && !strncmp(p, attribute, name_len))
            return true;
    return false;
}

static int check_part(const char *part, size_t len, char sep, struct masad_error *err)
{
    const char *p = part, *end = part + len;
    while (p < end) {
        const char *next = memchr(p, sep, (size_t)(end - p));
        size_t n = next ? (size_t)(next - p) : (size_t)(end - p);
        if (seen_before(part, p, sep))
            return error_set(err, 500, "pkcs11-uri",
                             "malformed PKCS#11 URI: attribute \"%.*s\" appears twice (RFC 7512 "
                             "§2.3)", (int)strcspn(p, "=;&"), p);
        if (check_one(p, n, sep == '&', err) != 0)
            return -1;
        p += n + 1;
    }
    return 0;
}

static char *attribute_string(P11KitUri *u, CK_ATTRIBUTE_TYPE type)
{
    CK_ATTRIBUTE *a = p11_kit_uri_get_attribute(u, type);
    if (!a || memchr(a->pValue, 0, a->ulValueLen))
        return NULL;
    return strndup(a->pValue, a->ulValueLen);
}

/* CK_TOKEN_INFO's label is padded with spaces; unset it is all zero. */
static char *token_label(P11KitUri *u)
{
    const CK_UTF8CHAR *label = p11_kit_uri_get_token_info(u)->label;
    size_t n = sizeof(p11_kit_uri_get_token_info(u)->label);
    if (!label[0])
        return NULL;
    while (n > 0 && label[n - 1] == ' ')
        n--;
    return strndup((const char *)label, n);
}

static void fill(struct pkcs11_uri *out)
{
    P11KitUri *u = out->parsed;
    out->token = token_label(u);
    out->object = attribute_string(u, CKA_LABEL);
    CK_ATTRIBUTE *id = p11_kit_uri_get_attribute(u, CKA_ID);
    if (id && id->ulValueLen) {
        out->id = id->pValue;
        out->id_len = id->ulValueLen;
    }
    out->module_path = p11_kit_uri_get_module_path(u);
    out->pin_value = p11_kit_uri_get_pin_value(u);
    out->pin_source = p11_kit_uri_get_pin_source(u);
}

int pkcs11_uri_parse(const char *uri, struct pkcs11_uri *out, struct masad_error *err)
{
    memset(out, 0, sizeof(*out));
    if (strncasecmp(uri, "pkcs11:", 7) != 0)
        return error_set(err, 500, "pkcs11-uri", "not a PKCS#11 URI: it must start with pkcs11:");
    const char *path = uri + 7, *query = strchr(path, '?');
    size_t path_len = query ? (size_t)(query - path) : strlen(path);
    if (check_part(path, path_len, ';', err) != 0 ||
        (query && check_part(query + 1, strlen(query + 1), '&', err) != 0))
        return -1;
    out->parsed = p11_kit_uri_new();
    int rc = p11_kit_uri_parse(uri, P11_KIT_URI_FOR_ANY, out->parsed);
    if (rc != P11_KIT_URI_OK) {
        pkcs11_uri_clear(out);
        return error_set(err, 500, "pkcs11-uri", "malformed PKCS#11 URI: %s",
                         p11_kit_uri_message(rc));
    }
    fill(out);
    CK_ATTRIBUTE *label = p11_kit_uri_get_attribute(out->parsed, CKA_LABEL);
    if (label && !out->object) {
        pkcs11_uri_clear(out);
        return error_set(err, 500, "pkcs11-uri",
                         "malformed PKCS#11 URI: attribute \"object\" holds a NUL byte");
    }
    if (!out->object && !out->id) {
        pkcs11_uri_clear(out);
        return error_set(err, 500, "pkcs11-uri", "the PKCS#11 URI names no key: give object= or id=");
    }
    return 0;
}

void pkcs11_uri_clear(struct pkcs11_uri *u)
{
    free(u->token);
    free(u->object);
    /* p11-kit keeps pin-value in memory it frees without wiping */
    if (u->pin_value)
        OPENSSL_cleanse((void *)u->pin_value, strlen(u->pin_value));
    if (u->parsed)
        p11_kit_uri_free(u->parsed);
    memset(u, 0, sizeof(*u));
}

static void pad(CK_UTF8CHAR *field, size_t size, const char *value)
{
    memset(field, ' ', size);
    if (value)
        memcpy(field, value, strnlen(value, size));
}

bool pkcs11_uri_matches_token(const struct pkcs11_uri *u, PKCS11_CTX *ctx, PKCS11_SLOT *slot)
{
    CK_INFO module = {0};
    pad(module.manufacturerID, sizeof(module.manufacturerID), ctx->manufacturer);
    pad(module.libraryDescription, sizeof(module.libraryDescription), ctx->description);
    CK_SLOT_INFO s = {0};
    pad(s.slotDescription, sizeof(s.slotDescription), slot->description);
    pad(s.manufacturerID, sizeof(s.manufacturerID), slot->manufacturer);
    CK_TOKEN_INFO t = {0};
    pad(t.label, sizeof(t.label), slot->token->label);
    pad(t.manufacturerID, sizeof(t.manufacturerID), slot->token->manufacturer);
    pad(t.model, sizeof(t.model), slot->token->model);
    pad(t.serialNumber, sizeof(t.serialNumber), slot->token->serialnr);
    CK_SLOT_ID id = p11_kit_uri_get_slot_id(u->parsed);
    return p11_kit_uri_match_module_info(u->parsed, &module) &&
           p11_kit_uri_match_slot_info(u->parsed, &s) &&
           p11_kit_uri_match_token_info(u->parsed, &t) &&
           (id == (CK_SLOT_ID)-1 || id == PKCS11_get_slotid_from_slot(slot));
}

bool pkcs11_uri_matches_key(const struct pkcs11_uri *u, const PKCS11_KEY *key)
{
    CK_OBJECT_CLASS class = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE attrs[] = {
        {CKA_CLASS, &class, sizeof(class)},
        {CKA_LABEL, key->label, key->label ? strlen(key->label) : 0},
        {CKA_ID, key->id, key->id_len},
    };
    return p11_kit_uri_match_attributes(u->parsed, attrs, 3);
}
