#include "store/store_internal.h"

/* Every statement the service runs, prepared on each connection by name. */
const struct store_statement store_statements[] = {
    {"ping", "SELECT 1", 0},
    {NULL, NULL, 0},
};
