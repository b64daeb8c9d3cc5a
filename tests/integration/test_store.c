/*
 * Migrations and the privileges they set, against the test cluster.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int migrate(const struct test_db *db, const char *dir, char **out)
{
    const char *env[] = {"MASAD_MIGRATE_DATABASE_URL", db->owner_url, NULL};
    const char *with_dir[] = {"migrate", "--dir", dir, NULL};
    const char *embedded[] = {"migrate", NULL};
    return masad_run(out, env, dir ? with_dir : embedded);
}

Test(migrations, apply_once_then_reapply_is_a_no_op)
{
    struct test_db db;
    db_create(&db);
    char *out;
    cr_assert_eq(migrate(&db, NULL, &out), 0, "%s", out);
    cr_assert(strstr(out, "applied 0001_init.sql\napplied 0002_audit_chain.sql\napplied 0003_brski.sql\n"), "%s",
              out);
    cr_assert(strstr(out, "applied 0007_owner_brski_policy.sql\n"), "%s", out);
    cr_assert_eq(migrate(&db, NULL, &out), 0, "%s", out);
    cr_assert(strstr(out, "nothing to apply"), "%s", out);
    cr_assert_null(strstr(out, "applied 0001"), "%s", out);

    char *expected;
    cr_assert_eq(sh(&expected, "sha256sum %s/migrations/0001_init.sql | cut -c1-64",
                    env_or_die("MASAD_TEST_ROOT")), 0);
    expected[64] = 0;
    char *recorded = db_value(db.owner_url, "SELECT checksum FROM schema_migrations WHERE version = 1");
    cr_assert_str_eq(recorded, expected);
    /* every migration of the source tree, however many there are */
    char *files;
    cr_assert_eq(sh(&files, "ls %s/migrations/*.sql | wc -l", env_or_die("MASAD_TEST_ROOT")), 0);
    files[strcspn(files, "\n")] = 0;
    cr_assert_str_eq(db_value(db.owner_url, "SELECT count(*) FROM schema_migrations"), files);
}

Test(migrations, an_edited_migration_is_refused_by_name)
{
    struct test_db db;
    db_create(&db);
    char *dir = tmp_path("migrations-%s", db.name);
    cr_assert_eq(sh(NULL, "mkdir -p %s && cp %s/migrations/*.sql %s/", dir,
                    env_or_die("MASAD_TEST_ROOT"), dir), 0);
    char *out;
    cr_assert_eq(migrate(&db, dir, &out), 0, "%s", out);
    cr_assert_eq(sh(NULL, "echo '-- an afterthought' >> %s/0001_init.sql", dir), 0);
    cr_assert_eq(migrate(&db, dir, &out), 1, "%s", out);
    cr_assert(strstr(out, "migration 0001_init.sql was changed after it was applied"), "%s", out);
}

Test(migrations, new_migrations_apply_in_order_each_in_its_transaction)
{
    struct test_db db;
    db_create(&db);
    char *dir = tmp_path("migrations-%s", db.name);
    cr_assert_eq(sh(NULL,
                    "mkdir -p %s && cp %s/migrations/*.sql %s/ &&"
                    " echo 'CREATE TABLE later (x int);' > %s/0099_later.sql &&"
                    " echo 'CREATE TABLE sooner (x int);' > %s/0098_sooner.sql",
                    dir, env_or_die("MASAD_TEST_ROOT"), dir, dir, dir), 0);
    char *out;
    cr_assert_eq(migrate(&db, dir, &out), 0, "%s", out);
    char *first = strstr(out, "0098_sooner"), *second = strstr(out, "0099_later");
    cr_assert(first && second && first < second, "%s", out);

    /* a failing migration leaves nothing behind, and names itself */
    cr_assert_eq(sh(NULL, "printf 'CREATE TABLE half (x int);\\nSELECT nonsense;\\n' > %s/0100_broken.sql", dir), 0);
    cr_assert_eq(migrate(&db, dir, &out), 1, "%s", out);
    cr_assert(strstr(out, "0100_broken.sql"), "%s", out);
    cr_assert_null(db_value(db.owner_url, "SELECT 1 FROM pg_tables WHERE tablename = 'half'"));
    cr_assert_null(db_value(db.owner_url, "SELECT 1 FROM schema_migrations WHERE version = 100"));
}

Test(migrations, badly_named_files_are_refused)
{
    struct test_db db;
    db_create(&db);
    char *dir = tmp_path("migrations-%s", db.name);
    cr_assert_eq(sh(NULL, "mkdir -p %s && echo 'SELECT 1;' > %s/2_oops.sql", dir, dir), 0);
    char *out;
    cr_assert_eq(migrate(&db, dir, &out), 1, "%s", out);
    cr_assert(strstr(out, "2_oops.sql: a migration is named NNNN_name.sql"), "%s", out);
}

Test(migrations, missing_url_is_explained)
{
    char *out;
    const char *env[] = {"MASAD_MIGRATE_DATABASE_URL", "", NULL};
    const char *args[] = {"migrate", NULL};
    cr_assert_eq(masad_run(&out, env, args), 2);
    cr_assert(strstr(out, "MASAD_MIGRATE_DATABASE_URL is not set"), "%s", out);
}

static struct test_db migrated(void)
{
    struct test_db db;
    db_create(&db);
    char *out;
    cr_assert_eq(migrate(&db, NULL, &out), 0, "%s", out);
    cr_assert_eq(db_exec(db.app_url,
                         "INSERT INTO audit_events (chain, chain_seq, actor, action, outcome, prev_hash, hash)"
                         " VALUES (0, 1, 'test', 'test.event', 'ok', decode(repeat('00', 32), 'hex'),"
                         " decode(repeat('00', 32), 'hex'))", NULL), 0);
    return db;
}

static void refused(const char *url, const char *sql, const char *reason)
{
    char *err = NULL;
    cr_assert_eq(db_exec(url, sql, &err), -1, "%s succeeded", sql);
    cr_assert(strstr(err, reason), "%s: %s", sql, err);
}

Test(audit_log, update_delete_truncate_are_refused_for_every_role)
{
    struct test_db db = migrated();
    char *superuser = db_url_for(env_or_die("MASAD_ADMIN_DATABASE_URL"), db.name);
    const char *as[] = {db.owner_url, superuser};
    for (int i = 0; i < 2; i++) {
        refused(as[i], "UPDATE audit_events SET outcome = 'forged'", "append-only: UPDATE refused");
        refused(as[i], "DELETE FROM audit_events", "append-only: DELETE refused");
        refused(as[i], "TRUNCATE audit_events", "append-only: TRUNCATE refused");
    }
    /* the runtime role is stopped before the trigger: it holds no such privilege */
    refused(db.app_url, "UPDATE audit_events SET outcome = 'forged'", "permission denied for table audit_events");
    refused(db.app_url, "DELETE FROM audit_events", "permission denied for table audit_events");
    refused(db.app_url, "TRUNCATE audit_events", "permission denied for table audit_events");
    refused(db.app_url, "DELETE FROM audit_checkpoints", "permission denied for table audit_checkpoints");
    cr_assert_str_eq(db_value(db.owner_url, "SELECT outcome FROM audit_events"), "ok");
    cr_assert_str_eq(db_value(db.owner_url, "SELECT count(*) FROM audit_events"), "1");
}

Test(audit_log, runtime_role_has_no_ddl)
{
    struct test_db db = migrated();
    refused(db.app_url, "CREATE TABLE mine (x int)", "permission denied for schema public");
    refused(db.app_url, "ALTER TABLE devices ADD COLUMN x int", "must be owner of table devices");
    refused(db.app_url, "DROP TABLE audit_events", "must be owner of table audit_events");
    refused(db.app_url, "DROP TRIGGER audit_events_no_update_delete ON audit_events",
            "must be owner of relation audit_events");
    refused(db.app_url, "INSERT INTO schema_migrations VALUES (99, 'x', 'y')",
            "permission denied for table schema_migrations");
    /* and it can do its work */
    cr_assert_eq(db_exec(db.app_url, "INSERT INTO devices (serial_number, product) VALUES ('S1', 'p')", NULL), 0);
    cr_assert_eq(db_exec(db.app_url, "UPDATE devices SET product = 'q' WHERE serial_number = 'S1'", NULL), 0);
}

Test(schema, constraints_hold)
{
    struct test_db db = migrated();
    refused(db.app_url, "INSERT INTO devices (serial_number, product) VALUES (' lead', 'p')",
            "violates check constraint");
    /* serials are UTF-8 text without control characters (C0, DEL, C1) */
    refused(db.app_url, "INSERT INTO devices (serial_number, product) VALUES (E'a\\x01b', 'p')",
            "violates check constraint");
    refused(db.app_url, "INSERT INTO devices (serial_number, product) VALUES (E'a\\x7fb', 'p')",
            "violates check constraint");
    refused(db.app_url, "INSERT INTO devices (serial_number, product) VALUES (E'a\\u0085b', 'p')",
            "violates check constraint");
    refused(db.app_url, "INSERT INTO devices (serial_number, product) VALUES (repeat('\xc3\xa9', 65), 'p')",
            "violates check constraint");
    cr_assert_eq(db_exec(db.app_url, "INSERT INTO devices (serial_number, product) VALUES"
                                     " ('JADA_f2-00-01', 'p'), ('a\"b*', 'p'), (repeat('\xc3\xa9', 64), 'p')",
                         NULL), 0);
    /* an owner's BRSKI policy is one of the documented values */
    refused(db.app_url, "INSERT INTO owners (owner_id, brski) VALUES ('p1', '{\"pinning\": \"root\"}')",
            "violates check constraint");
    refused(db.app_url, "INSERT INTO owners (owner_id, brski) VALUES ('p1', '{\"registrar_auth\": \"x\"}')",
            "violates check constraint");
    refused(db.app_url, "INSERT INTO owners (owner_id) VALUES ('Upper')", "violates check constraint");
    cr_assert_eq(db_exec(db.app_url,
                         "INSERT INTO devices (serial_number, product) VALUES ('S2', 'p');"
                         "INSERT INTO owners (owner_id) VALUES ('o1'), ('o2');"
                         "INSERT INTO ownership (serial_number, owner_id) VALUES ('S2', 'o1')", NULL), 0);
    /* one current owner per device */
    refused(db.app_url, "INSERT INTO ownership (serial_number, owner_id) VALUES ('S2', 'o2')",
            "ownership_current");
}
