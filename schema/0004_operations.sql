-- 0004_operations.sql: what operators need to act on dead letters and to
-- graph delivery: when an update died and the last HTTP status behind it,
-- and call counters by lane and HTTP status for metrics.

ALTER TABLE updates ADD COLUMN dead_at_ms INTEGER;          -- when it became dead
ALTER TABLE updates ADD COLUMN last_http_status INTEGER;    -- Target's last answer, if any

-- Calls made, by lane and HTTP status (0: no answer), since the outbox was
-- created; the source of pobox_calls_total.  `errors` counts the calls whose
-- outcome was not a success.
CREATE TABLE call_counts (
	lane        TEXT NOT NULL CHECK (lane IN ('bulk', 'single')),
	http_status INTEGER NOT NULL,
	calls       INTEGER NOT NULL DEFAULT 0,
	errors      INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (lane, http_status)
) STRICT, WITHOUT ROWID;

CREATE VIEW v_dead AS
SELECT v.seq, v.id_type, v.profile_id, v.attr, v.value, v.attempts, u.last_http_status,
       v.last_error AS reason, v.source, v.enqueued_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', u.dead_at_ms / 1000.0, 'unixepoch') AS dead_at
FROM v_updates v JOIN updates u ON u.seq = v.seq
WHERE v.state = 'dead'
ORDER BY v.seq;
