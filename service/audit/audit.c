#include "audit/audit.h"

#include "common/log.h"
#include "store/store.h"

int audit_append(struct store_conn *db, struct arena *a, const struct audit_event *e,
                 struct masad_error *err)
{
    const char *params[] = {e->actor, e->action, e->serial_number, e->owner_id, e->outcome,
                            e->detail};
    return store_exec(db, a, "audit_append", 6, params, NULL, err);
}

int audit_append_many(struct store_conn *db, struct arena *a, const char *actor,
                      const char *action, const char *outcome, const char *const *serials,
                      const char *const *owners, size_t count, const char *detail,
                      struct masad_error *err)
{
    if (count == 0)
        return 0;
    const char *params[] = {actor, action, outcome, detail,
                            store_text_array(a, serials, count),
                            owners ? store_text_array(a, owners, count) : NULL};
    return store_exec(db, a, "audit_append_many", 6, params, NULL, err);
}

void audit_refusal(struct store_conn *db, struct arena *a, const struct audit_event *e)
{
    struct masad_error err;
    if (audit_append(db, a, e, &err) != 0)
        log_error("audit: cannot record the refusal %s of %s: %s", e->action,
                  e->actor ? e->actor : "?", err.message);
}
