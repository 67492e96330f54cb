-- 0003_single.sql: the single-call lane and its quota ledger.
--
-- Target allows 1,000,000 single profile updates per rolling 24 hours per
-- account.  Every single call reserves one unit here before it is made and
-- is settled after (the unit becomes `used` in the minute it was reserved,
-- or is released when the call was never made), so all pobox processes on
-- this outbox together stay within the budget, exactly to the minute and
-- across restarts.  A reservation left by a process that died is counted
-- as used (the call may have reached Target) by the next reservation.
--
-- A single call is carried by a batch row with lane 'single' holding up to
-- a few hundred profiles, one call each; the fence and the derived states
-- work as for bulk batches.

CREATE TABLE quota_minutes (
	minute INTEGER PRIMARY KEY,               -- Unix time / 60
	used   INTEGER NOT NULL DEFAULT 0,        -- calls made (or possibly made)
	urgent INTEGER NOT NULL DEFAULT 0         -- of which for urgent updates
) STRICT;

CREATE TABLE quota_reservations (
	owner  TEXT NOT NULL,                     -- host:pid:start of the reserving process
	minute INTEGER NOT NULL,
	units  INTEGER NOT NULL CHECK (units >= 0),
	urgent INTEGER NOT NULL DEFAULT 0 CHECK (urgent >= 0),
	PRIMARY KEY (owner, minute)
) STRICT, WITHOUT ROWID;

-- A profile that a single call did not find goes to the bulk lane (v2
-- creates profiles) until it has been delivered once.
ALTER TABLE profiles ADD COLUMN route_bulk INTEGER NOT NULL DEFAULT 0;

CREATE INDEX profiles_retry_at ON profiles (next_attempt_at_ms) WHERE next_attempt_at_ms > 0;

-- Single calls in the last 24 hours, per hour (the newest hour last).
CREATE VIEW v_quota AS
WITH now(m) AS (SELECT CAST(strftime('%s', 'now') AS INTEGER) / 60)
SELECT strftime('%Y-%m-%dT%H:00Z', (q.minute / 60) * 3600, 'unixepoch') AS hour,
       sum(q.used) AS used, sum(q.urgent) AS urgent
FROM quota_minutes q, now
WHERE q.minute > now.m - 1440
GROUP BY q.minute / 60
ORDER BY q.minute / 60;
