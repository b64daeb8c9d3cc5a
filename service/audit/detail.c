/* Event details written canonically once (docs/audit.md, The hash). */
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "common/json.h"

enum member_type { MEMBER_STR, MEMBER_INT, MEMBER_BOOL };

struct member {
    const char *key;
    enum member_type type;
    const char *str;
    long long num;
};

struct audit_detail {
    struct arena *a;
    struct member members[AUDIT_DETAIL_MEMBERS];
    size_t count;
    bool overflow;
};

struct audit_detail *audit_detail_new(struct arena *a)
{
    struct audit_detail *d = arena_alloc(a, sizeof(*d));
    d->a = a;
    return d;
}

static struct member *add(struct audit_detail *d, const char *key, enum member_type type)
{
    if (d->count == AUDIT_DETAIL_MEMBERS) {
        d->overflow = true;
        return NULL;
    }
    struct member *m = &d->members[d->count++];
    m->key = key;
    m->type = type;
    return m;
}

void audit_detail_str(struct audit_detail *d, const char *key, const char *value)
{
    struct member *m = add(d, key, MEMBER_STR);
    if (m)
        m->str = value;
}

void audit_detail_int(struct audit_detail *d, const char *key, long long value)
{
    struct member *m = add(d, key, MEMBER_INT);
    if (m)
        m->num = value;
}

void audit_detail_bool(struct audit_detail *d, const char *key, bool value)
{
    struct member *m = add(d, key, MEMBER_BOOL);
    if (m)
        m->num = value;
}

/* json_write_canonical's order: strcmp of the keys (UTF-8 byte order) */
static int by_key(const void *x, const void *y)
{
    return strcmp(((const struct member *)x)->key, ((const struct member *)y)->key);
}

const char *audit_detail_text(struct audit_detail *d)
{
    if (d->overflow)
        return NULL;
    qsort(d->members, d->count, sizeof(d->members[0]), by_key);
    for (size_t i = 1; i < d->count; i++)
        if (!strcmp(d->members[i - 1].key, d->members[i].key))
            return NULL; /* the JSON parser refuses duplicate keys */
    yajl_gen g = json_gen_new();
    json_open(g);
    for (size_t i = 0; i < d->count; i++) {
        const struct member *m = &d->members[i];
        json_str(g, m->key);
        if (m->type == MEMBER_STR)
            json_str(g, m->str);
        else if (m->type == MEMBER_INT)
            json_int(g, m->num);
        else
            json_bool(g, (int)m->num);
    }
    json_close(g);
    return json_finish(g, d->a, NULL);
}
