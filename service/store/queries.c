#include <string.h>

#include "store/store_internal.h"

/* Statements of no one entity. */
static const struct store_statement core_statements[] = {
    {"ping", "SELECT 1", 0},
    {NULL, NULL, 0},
};

/* Every statement the service runs, prepared on each connection by name,
 * one table per entity file. */
const struct store_statement *const store_statement_sets[] = {
    core_statements,
    store_tokens_statements,
    store_audit_statements,
    store_devices_statements,
    store_ownership_statements,
    store_owners_statements,
    store_brski_statements,
    store_vouchers_statements,
    store_sztp_statements,
    NULL,
};

const struct store_statement *store_statement_find(const char *name)
{
    for (const struct store_statement *const *set = store_statement_sets; *set; set++)
        for (const struct store_statement *s = *set; s->name; s++)
            if (!strcmp(s->name, name))
                return s;
    return NULL;
}
