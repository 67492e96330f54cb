-- 0002_delivery.sql: bulk delivery - batches, per-profile watermarks, the
-- per-minute call ledger, lane pauses, last delivered values, and views
-- that show each update's derived state.
--
-- How an update's state is derived (v_updates):
--
--   stored state        profile watermarks                 derived state
--   ------------        ------------------                 -------------
--   superseded / dead   -                                  the same
--   live                seq <= done_seq                    delivered
--   live                batch IS NOT NULL, seq <= batch_seq batched
--   live                otherwise                          pending
--
-- The scheduler cuts a batch by setting, per profile, batch and batch_seq
-- (the newest seq it carries); completion sets done_seq = batch_seq and
-- clears batch.  A profile with batch set is fenced: nothing newer of it is
-- cut until that batch is final.  Batch states:
--
--   ready ──submit──► sending ──accepted──► submitted ──complete──► done
--     ▲                  │                      │
--     └──retry/throttle──┘                      ├──stuck / status lost──► replaced (rows moved to a new batch)
--   rejected file: split (rows moved to two halves); attempts or age used up: dead

ALTER TABLE profiles ADD COLUMN batch INTEGER;                        -- unfinished batch holding it
ALTER TABLE profiles ADD COLUMN batch_seq INTEGER NOT NULL DEFAULT 0;  -- newest seq in that batch
ALTER TABLE profiles ADD COLUMN done_seq INTEGER NOT NULL DEFAULT 0;   -- live rows <= this are delivered
ALTER TABLE profiles ADD COLUMN done_at_ms INTEGER;                    -- last confirmed delivery
ALTER TABLE profiles ADD COLUMN last_v2_at_ms INTEGER;                 -- last delivery in a v2 batch
ALTER TABLE profiles ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;   -- failed tries of its pending rows
ALTER TABLE profiles ADD COLUMN next_attempt_at_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE profiles ADD COLUMN last_error TEXT;

CREATE INDEX profiles_in_batch ON profiles (batch) WHERE batch IS NOT NULL;

CREATE TABLE batches (
	id                 INTEGER PRIMARY KEY,
	lane               TEXT NOT NULL DEFAULT 'bulk' CHECK (lane IN ('bulk', 'single')),
	api                TEXT NOT NULL CHECK (api IN ('v1', 'v2', 'single')),
	id_type            TEXT NOT NULL CHECK (id_type IN ('pcId', 'thirdPartyId')),
	state              TEXT NOT NULL
	                   CHECK (state IN ('ready', 'sending', 'submitted', 'done', 'dead', 'split', 'replaced')),
	reason             TEXT NOT NULL DEFAULT 'cut'
	                   CHECK (reason IN ('cut', 'split', 'stuck', 'lost')),  -- why it exists
	parent             INTEGER,                 -- the batch it was split from or replaces
	resubmits          INTEGER NOT NULL DEFAULT 0,  -- stuck/lost generations so far
	profiles           INTEGER NOT NULL,        -- data rows
	updates            INTEGER NOT NULL,        -- live updates it carries
	carried            INTEGER NOT NULL DEFAULT 0,  -- cells carried forward (v2 override safety)
	bytes              INTEGER NOT NULL,        -- payload size as sent
	payload_crc32      INTEGER NOT NULL,        -- of the uncompressed bytes
	status_url         TEXT,                    -- as Target returned it, followed verbatim
	attempts           INTEGER NOT NULL DEFAULT 0,
	polls              INTEGER NOT NULL DEFAULT 0,
	next_at_ms         INTEGER NOT NULL DEFAULT 0,  -- next submit or poll
	remote_status      TEXT,                    -- last batchStatus status
	last_http_status   INTEGER,
	last_error         TEXT,
	created_at_ms      INTEGER NOT NULL,
	submitted_at_ms    INTEGER,
	finished_at_ms     INTEGER,
	batch_size         INTEGER,                 -- showDetails counts
	successful_updates INTEGER,
	profiles_not_found INTEGER,
	failed_updates     INTEGER,
	-- zlib: the exact bytes to send.  The last column on purpose: a payload
	-- is written as zeroblob(n) and then filled in place, which SQLite does
	-- without materialising the zeros only for a record's last column.
	payload            BLOB NOT NULL
) STRICT;

CREATE INDEX batches_unfinished ON batches (next_at_ms)
	WHERE state IN ('ready', 'sending', 'submitted');

-- Every bulk call (submit and poll) made in the last minute, so that all
-- pobox processes on this outbox together stay under bulk_calls_per_minute
-- across restarts.  Rows older than a minute are deleted as calls are made.
CREATE TABLE bulk_calls (
	at_ms INTEGER NOT NULL
) STRICT;

-- A lane paused by a throttle, an auth failure or a configuration problem.
CREATE TABLE lanes (
	lane            TEXT PRIMARY KEY CHECK (lane IN ('bulk', 'single')),
	paused_until_ms INTEGER NOT NULL DEFAULT 0,
	pause_class     TEXT,                       -- throttle, auth, config
	pause_reason    TEXT
) STRICT, WITHOUT ROWID;
INSERT INTO lanes (lane) VALUES ('bulk'), ('single');

-- Last delivered values of updates housekeeping has pruned.  The newest
-- delivered value of an attribute is the latest delivered live row if one
-- is left, else this table (v_profile_state joins both).
CREATE TABLE profile_state (
	profile    INTEGER NOT NULL,
	attr       INTEGER NOT NULL,
	value      TEXT NOT NULL,
	sent_at_ms INTEGER NOT NULL,
	seq        INTEGER NOT NULL,               -- the pruned update it came from
	PRIMARY KEY (profile, attr)
) STRICT, WITHOUT ROWID;

-- ---------------------------------------------------------------------
-- Views (replacing 0001's, which knew no delivery)

DROP VIEW v_status;
DROP VIEW v_pending;
DROP VIEW v_updates;

CREATE VIEW v_updates AS
SELECT u.seq,
       p.id_type,
       p.profile_id,
       a.name AS attr,
       u.value,
       CASE WHEN u.state <> 'live' THEN u.state
            WHEN u.seq <= p.done_seq THEN 'delivered'
            WHEN p.batch IS NOT NULL AND u.seq <= p.batch_seq THEN 'batched'
            ELSE 'pending' END AS state,
       u.urgent,
       s.name AS source,
       strftime('%Y-%m-%dT%H:%M:%fZ', u.enqueued_at_ms / 1000.0, 'unixepoch') AS enqueued_at,
       CASE WHEN u.state = 'live' AND u.seq > p.done_seq AND u.seq <= p.batch_seq THEN p.batch END AS batch,
       u.superseded_by,
       CASE WHEN u.state = 'live' AND u.seq > p.done_seq THEN p.attempts ELSE u.attempts END AS attempts,
       CASE WHEN u.state = 'live' AND u.seq > p.done_seq THEN p.last_error ELSE u.last_error END AS last_error
FROM updates u
JOIN profiles p ON p.id = u.profile
JOIN attributes a ON a.id = u.attr
LEFT JOIN sources s ON s.id = u.source;

CREATE VIEW v_pending AS
SELECT v.*,
       CAST((julianday('now') - julianday(v.enqueued_at)) * 86400 AS INTEGER) AS age_s
FROM v_updates v
WHERE v.state = 'pending'
ORDER BY v.seq;

CREATE VIEW v_status AS
WITH states(state, ord) AS (
	VALUES ('pending', 1), ('batched', 2), ('delivered', 3), ('superseded', 4), ('dead', 5)
),
counts AS (SELECT state, count(*) AS n, min(enqueued_at) AS oldest FROM v_updates GROUP BY state)
SELECT s.state,
       coalesce(c.n, 0) AS updates,
       CASE WHEN s.state = 'pending' THEN c.oldest END AS oldest_enqueued_at
FROM states s LEFT JOIN counts c ON c.state = s.state
ORDER BY s.ord;

CREATE VIEW v_batches AS
SELECT b.id, b.lane, b.api, b.id_type, b.state, b.reason, b.parent, b.resubmits,
       b.profiles, b.updates, b.carried, b.bytes, b.attempts, b.polls,
       b.remote_status, b.last_http_status, b.last_error, b.status_url,
       strftime('%Y-%m-%dT%H:%M:%fZ', b.created_at_ms / 1000.0, 'unixepoch') AS created_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', b.submitted_at_ms / 1000.0, 'unixepoch') AS submitted_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', b.finished_at_ms / 1000.0, 'unixepoch') AS finished_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', b.next_at_ms / 1000.0, 'unixepoch') AS next_at,
       b.batch_size, b.successful_updates, b.profiles_not_found, b.failed_updates
FROM batches b;

-- The last value Target was sent for each profile attribute.
CREATE VIEW v_profile_state AS
WITH delivered AS (
	SELECT u.profile, u.attr, u.value, p.done_at_ms AS sent_at_ms,
	       row_number() OVER (PARTITION BY u.profile, u.attr ORDER BY u.seq DESC) AS rn
	FROM updates u JOIN profiles p ON p.id = u.profile
	WHERE u.state = 'live' AND u.seq <= p.done_seq
)
SELECT p.id_type, p.profile_id, a.name AS attr, x.value,
       strftime('%Y-%m-%dT%H:%M:%fZ', x.sent_at_ms / 1000.0, 'unixepoch') AS sent_at
FROM (SELECT profile, attr, value, sent_at_ms FROM delivered WHERE rn = 1
      UNION ALL
      SELECT ps.profile, ps.attr, ps.value, ps.sent_at_ms FROM profile_state ps
      WHERE NOT EXISTS (SELECT 1 FROM delivered d WHERE d.profile = ps.profile AND d.attr = ps.attr)) x
JOIN profiles p ON p.id = x.profile
JOIN attributes a ON a.id = x.attr;
