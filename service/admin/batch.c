/* What the two batch operations share. */
#include <stdlib.h>
#include <string.h>

#include "admin/admin_internal.h"

struct batch_serial {
    const char *serial;
    size_t index;
};

static int by_serial_then_index(const void *x, const void *y)
{
    const struct batch_serial *a = x, *b = y;
    int rc = strcmp(a->serial, b->serial);
    return rc ? rc : (a->index > b->index) - (a->index < b->index);
}

void batch_duplicates(struct call *c, const struct json_value *list, const char *name)
{
    struct batch_serial *s = arena_alloc(c->a, list->count * sizeof(*s));
    size_t n = 0;
    for (size_t i = 0; i < list->count; i++) {
        const struct json_value *v = json_get(list->items[i], "serial_number");
        if (v && v->type == JSON_STRING)
            s[n++] = (struct batch_serial){v->text, i};
    }
    qsort(s, n, sizeof(*s), by_serial_then_index);
    for (size_t i = 1, first = 0; i < n; i++) {
        if (strcmp(s[i].serial, s[first].serial) != 0) {
            first = i;
            continue;
        }
        call_field_error(c, arena_printf(c->a, "/%s/%zu/serial_number", name, s[i].index),
                         "appears twice in the batch (also at /%s/%zu)", name, s[first].index);
    }
}
