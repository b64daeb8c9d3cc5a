/*
 * brski_truncate_log (service/brski/auditlog.c): RFC 8995 §5.8.1's
 * truncation of the audit log a registrar reads.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "brski/brski_internal.h"

static struct config limits(unsigned max, unsigned nonced, unsigned nonceless)
{
    struct config c;
    memset(&c, 0, sizeof(c));
    c.brski_log_max_events = max;
    c.brski_log_nonced_per_domain = nonced;
    c.brski_log_nonceless_per_domain = nonceless;
    return c;
}

static struct brski_log_event ev(const char *domain, const char *nonce)
{
    return (struct brski_log_event){"2026-11-23T14:05:09.000Z", domain, nonce, "verified", 0, false};
}

Test(brski_auditlog, nothing_to_truncate)
{
    struct config cfg = limits(10, 5, 5);
    struct brski_log_event e[] = {ev("A", "n1"), ev("A", NULL), ev("B", "n2")};
    struct brski_truncation t;
    brski_truncate_log(e, 3, &cfg, &t);
    for (int i = 0; i < 3; i++) {
        cr_assert(e[i].kept);
        cr_assert_eq(e[i].truncated, 0);
    }
    cr_assert_eq(t.nonced + t.nonceless + t.arbitrary, 0);
}

Test(brski_auditlog, empty_log)
{
    struct config cfg = limits(10, 5, 5);
    struct brski_truncation t;
    brski_truncate_log(NULL, 0, &cfg, &t);
    cr_assert_eq(t.nonced + t.nonceless + t.arbitrary, 0);
}

/* newest first: the newest per domain and kind are kept, the older ones
 * are counted into the oldest kept one */
Test(brski_auditlog, duplicates_per_domain_and_kind)
{
    struct config cfg = limits(100, 1, 2);
    struct brski_log_event e[] = {ev("A", "n1"), ev("A", "n2"), ev("A", "n3"), ev("A", NULL),
                                  ev("A", NULL), ev("A", NULL), ev("B", "n4")};
    struct brski_truncation t;
    brski_truncate_log(e, 7, &cfg, &t);
    bool kept[] = {true, false, false, true, true, false, true};
    for (int i = 0; i < 7; i++)
        cr_assert_eq(e[i].kept, kept[i], "event %d", i);
    cr_assert_eq(e[0].truncated, 2, "the nonced duplicates fold into the newest");
    cr_assert_eq(e[4].truncated, 1, "the nonceless one into the last kept");
    cr_assert_eq(e[3].truncated, 0);
    cr_assert_eq(e[6].truncated, 0);
    cr_assert_eq(t.nonced, 2);
    cr_assert_eq(t.nonceless, 1);
    cr_assert_eq(t.arbitrary, 0);
}

Test(brski_auditlog, beyond_the_total_the_oldest_go)
{
    struct config cfg = limits(2, 5, 5);
    struct brski_log_event e[] = {ev("A", "n1"), ev("B", "n2"), ev("C", "n3"), ev("D", NULL)};
    struct brski_truncation t;
    brski_truncate_log(e, 4, &cfg, &t);
    cr_assert(e[0].kept && e[1].kept);
    cr_assert(!e[2].kept && !e[3].kept);
    cr_assert_eq(t.arbitrary, 2);
    cr_assert_eq(t.nonced + t.nonceless, 0);
}
