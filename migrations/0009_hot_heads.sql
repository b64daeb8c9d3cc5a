-- 0009: room on the page for the rows updated in place (docs/audit.md,
-- Chains), so that those updates stay HOT (heap-only tuples): the new row
-- version goes on the same page and no index entry is written.
--
-- audit_heads: every append moves a head (chain_seq, hash: no index on
-- either). api_tokens: last_used_at at most once a minute per token (not
-- indexed). A fillfactor leaves free space on each page for the new
-- versions; page pruning then reclaims the old ones without VACUUM.
-- audit_heads is 64 small rows on one page: half of it is plenty.
-- Neither table is audit_events, so the audit guard (deploy/dev/audit-guard.sql)
-- does not apply. The setting governs pages written from now on; the
-- heads' single page already has the room.
ALTER TABLE audit_heads SET (fillfactor = 50);
ALTER TABLE api_tokens SET (fillfactor = 70);
