-- 0006: SZTP progress reports, bounded per device (docs/sztp.md, Progress).
--
-- A device's newest report (the management API's last_progress) is read
-- through this index, ordered by the report time. Ordered by id alone, the
-- planner could walk the primary key backwards across every device's
-- reports, and a listing of devices slowed down as one device reported more.
CREATE INDEX sztp_progress_latest ON sztp_progress (serial_number, at DESC, id DESC);

-- Each device keeps its newest 1,000 reports: older ones are deleted as new
-- ones arrive, and counted here.
ALTER TABLE devices ADD COLUMN sztp_progress_pruned bigint NOT NULL DEFAULT 0
    CHECK (sztp_progress_pruned >= 0);
