-- 0006_storage.sql: storage that costs what the change costs.
--
-- Until schema 4 every attribute update was a row of `updates`, and every
-- step (a cut, a count, a status, changed-only) walked those rows: the
-- cost of a nightly job grew with the outbox, not with the change.  From
-- here on:
--
--   writes         one row per profile per write (a CSV record, a put, an
--                  INSERT INTO enqueue), its values packed as a JSON array
--                  aligned with a shape (the attribute ids, in order).  The
--                  update at position i of write w has seq w.seq + i: seqs
--                  are global, in enqueue order, never reused, exactly as
--                  the seq of an `updates` row was.  A null is a column the
--                  write does not set (an empty CSV cell).
--   fates          only the updates whose fate is not `live`: superseded
--                  (with what superseded it) or dead (with the reason).
--   profiles       one row per profile, in arrival order (an export in a
--                  stable order reads them in id order), with the delivery
--                  watermark done_seq and its newest write (last_write: a
--                  cut knows a profile has one new write without looking);
--                  `sent` holds its last delivered
--                  values folded into one row ([attr, value, seq,
--                  sent_at_ms] each) for changed-only and carry-forward.
--   batches        each batch lists its profiles (batch_members, a JSON
--                  array; its body is in batch_payloads) and the seq it
--                  was cut at (batch_seq); profiles that
--                  left it early (a settled single call, a failed row) are
--                  in batch_left.  A cut writes no profile row.
--   the pending set  writes above tallies.cut_seq (what no cut has seen
--                  yet) and the profiles in `held` (seen, but fenced or not
--                  due then): what a cut reads, apart from history.
--   profile_keys   (id type, profile id) -> profile through a 64-bit hash
--   profile_keys_new  computed by pobox (pobox_khash): new keys go into
--                  the small table, merged into the big one in key order
--                  when it has grown by a quarter, so interning a million
--                  new profiles never inserts into a big random index.
--   staged         updates inserted by sqlite3 producers (INSERT INTO
--                  enqueue: SQL cannot compute the key hash); pobox moves
--                  them into writes, keeping their seq, before every cut.
--   tallies        one row: the next seq, the cut watermark, updates per
--                  state, profiles, the oldest pending time, the last
--                  delivery; kept in the same transactions that change
--                  them, so status, metrics and `run`'s wake-up read O(1).
--
-- An update (seq s of profile p) is, as the views show it:
--
--   has a fates row                              superseded / dead
--   s <= p.done_seq                              delivered
--   p is a member of an unfinished batch b (and not in batch_left),
--     s <= b.batch_seq                           batched
--   otherwise                                    pending
--
-- Invariants (pobox doctor checks each against a recount):
--   1. tallies.pending/batched/delivered/superseded/dead = the number of
--      updates (writes' cells and staged rows) in that state.
--   2. a pending update of p has seq > tallies.cut_seq, or p is in held.
--   3. a profile is a member of at most one unfinished batch (a cut holds
--      back a member's newer updates: held); a batch's `held` is the live
--      updates its members (not in batch_left) have in it.
--   4. every profile has exactly one key row (in profile_keys or
--      profile_keys_new) with khash = pobox_khash(id_type, profile_id).
--   5. sent holds the newest delivered value of each attribute whose
--      update has seq <= sent_seq <= done_seq; delivered writes above
--      sent_seq are folded in before the profile is cut again (so each
--      value keeps its delivery time).
--
-- The upgrade below moves a schema-4 outbox in place, in this one
-- transaction: each `updates` row becomes a one-update write with the same
-- seq (so watermarks, batches and dead-letter ids keep their meaning),
-- profile_state becomes `sent`, profiles.batch becomes batch members, and
-- the counts are computed once.

-- ---------------------------------------------------------------------
-- Shapes: the attribute ids of a write, in order, as JSON ([3,5,8]).
CREATE TABLE shapes (
	id    INTEGER PRIMARY KEY,
	attrs TEXT NOT NULL UNIQUE
) STRICT;
-- the one-attribute shapes of the migrated rows: shape i is [i]
INSERT INTO shapes (id, attrs) SELECT id, json_array(id) FROM attributes;

-- ---------------------------------------------------------------------
-- Profiles, rebuilt.  id_type: 1 pcId, 2 thirdPartyId (pobox.h's enum);
-- the views show the names.
CREATE TABLE profiles_v5 (
	id                 INTEGER PRIMARY KEY,
	id_type            INTEGER NOT NULL CHECK (id_type = 1 OR id_type = 2),
	profile_id         TEXT NOT NULL CHECK (length(CAST(profile_id AS BLOB)) BETWEEN 1 AND 256),
	done_seq           INTEGER NOT NULL DEFAULT 0, -- live updates <= this are delivered
	done_at_ms         INTEGER,                    -- last confirmed delivery
	last_v2_at_ms      INTEGER,                    -- last delivery in a v2 batch
	attempts           INTEGER NOT NULL DEFAULT 0, -- failed tries of its pending updates
	next_attempt_at_ms INTEGER NOT NULL DEFAULT 0,
	last_error         TEXT,
	route_bulk         INTEGER NOT NULL DEFAULT 0, -- a single call did not find it
	sent_seq           INTEGER NOT NULL DEFAULT 0, -- delivered updates <= this are in sent
	last_write         INTEGER NOT NULL DEFAULT 0  -- seq of its newest write
) STRICT;

INSERT INTO profiles_v5 (id, id_type, profile_id, done_seq, done_at_ms, last_v2_at_ms, attempts,
                         next_attempt_at_ms, last_error, route_bulk, sent_seq, last_write)
SELECT p.id, CASE p.id_type WHEN 'pcId' THEN 1 ELSE 2 END, p.profile_id, p.done_seq,
       p.done_at_ms, p.last_v2_at_ms, p.attempts, p.next_attempt_at_ms, p.last_error,
       p.route_bulk, coalesce((SELECT max(ps.seq) FROM profile_state ps WHERE ps.profile = p.id), 0),
       coalesce((SELECT max(u.seq) FROM updates u WHERE u.profile = p.id), 0)
FROM profiles p;

-- Last delivered values, folded: [[attr, value, seq, sent_at_ms], ...].
CREATE TABLE sent (
	profile INTEGER PRIMARY KEY,
	cells   TEXT NOT NULL
) STRICT;
INSERT INTO sent (profile, cells)
SELECT profile, json_group_array(json_array(attr, value, seq, sent_at_ms))
FROM (SELECT * FROM profile_state ORDER BY profile, attr) GROUP BY profile;

-- ---------------------------------------------------------------------
-- Writes: one row per profile per write.
CREATE TABLE writes (
	seq            INTEGER PRIMARY KEY,   -- seq of its first update (position 0)
	profile        INTEGER NOT NULL,      -- profiles.id
	shape          INTEGER NOT NULL,      -- shapes.id: attribute of each position
	cells          TEXT NOT NULL,         -- JSON array of values (null: not set)
	n              INTEGER NOT NULL,      -- updates in it (non-null cells)
	enqueued_at_ms INTEGER NOT NULL,
	source         INTEGER,               -- sources.id
	urgent         INTEGER NOT NULL DEFAULT 0 CHECK (urgent = 0 OR urgent = 1),
	fates          INTEGER NOT NULL DEFAULT 0   -- how many of its updates have a fates row
) STRICT;

INSERT INTO writes (seq, profile, shape, cells, n, enqueued_at_ms, source, urgent, fates)
SELECT seq, profile, attr, json_array(value), 1, enqueued_at_ms, source, urgent,
       state <> 'live'
FROM updates ORDER BY seq;

-- A profile's writes in order: the cut, changed-only and folding read them.
-- Profiles arrive in id order and seqs grow, so inserts land at the right.
CREATE INDEX writes_by_profile ON writes (profile, seq);

-- Updates that are not live.
CREATE TABLE fates (
	seq              INTEGER PRIMARY KEY,  -- the update: its write's seq + position
	state            TEXT NOT NULL CHECK (state = 'superseded' OR state = 'dead'),
	superseded_by    INTEGER,              -- seq of the update that won
	attempts         INTEGER NOT NULL DEFAULT 0,
	last_error       TEXT,
	dead_at_ms       INTEGER,
	last_http_status INTEGER
) STRICT;

INSERT INTO fates (seq, state, superseded_by, attempts, last_error, dead_at_ms, last_http_status)
SELECT seq, state, superseded_by, attempts, last_error, dead_at_ms, last_http_status
FROM updates WHERE state <> 'live';

CREATE INDEX fates_dead ON fates (dead_at_ms) WHERE state = 'dead';

-- ---------------------------------------------------------------------
-- Updates from sqlite3 producers, until pobox moves them into writes.
CREATE TABLE staged (
	seq            INTEGER PRIMARY KEY,
	id_type        INTEGER NOT NULL,
	profile_id     TEXT NOT NULL,
	attr           INTEGER NOT NULL,
	value          TEXT NOT NULL,
	enqueued_at_ms INTEGER NOT NULL,
	source         INTEGER,
	urgent         INTEGER NOT NULL DEFAULT 0
) STRICT;

-- ---------------------------------------------------------------------
-- Key hashes: (id_type, profile_id) -> profile.
CREATE TABLE profile_keys (
	khash   INTEGER NOT NULL,
	profile INTEGER NOT NULL,
	PRIMARY KEY (khash, profile)
) STRICT, WITHOUT ROWID;
CREATE TABLE profile_keys_new (
	khash   INTEGER NOT NULL,
	profile INTEGER NOT NULL,
	PRIMARY KEY (khash, profile)
) STRICT, WITHOUT ROWID;
INSERT INTO profile_keys (khash, profile)
SELECT pobox_khash(id_type, profile_id), id FROM profiles_v5 ORDER BY 1, 2;

-- ---------------------------------------------------------------------
-- Counts, kept as they change.
CREATE TABLE tallies (
	one              INTEGER PRIMARY KEY CHECK (one = 1),
	next_seq         INTEGER NOT NULL,  -- the seq the next update gets
	cut_seq          INTEGER NOT NULL,  -- every write up to this one has been seen by a cut
	pending          INTEGER NOT NULL,  -- updates in each derived state
	batched          INTEGER NOT NULL,
	delivered        INTEGER NOT NULL,
	superseded       INTEGER NOT NULL,
	dead             INTEGER NOT NULL,
	profiles         INTEGER NOT NULL,  -- rows of profiles (ids are 1..profiles)
	keys_main        INTEGER NOT NULL,  -- rows of profile_keys
	keys_new         INTEGER NOT NULL,  -- rows of profile_keys_new
	key_filter_gen   INTEGER NOT NULL DEFAULT 0,  -- bumped when profile_keys changes
	batch_gen        INTEGER NOT NULL DEFAULT 0,  -- bumped when unfinished batches change
	last_delivery_ms INTEGER NOT NULL DEFAULT 0,
	oldest_pending_ms INTEGER           -- enqueue time of the oldest pending update
) STRICT;

INSERT INTO tallies (one, next_seq, cut_seq, pending, batched, delivered, superseded, dead,
                     profiles, keys_main, keys_new, last_delivery_ms, oldest_pending_ms)
SELECT 1,
       max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'updates'), 0),
           coalesce((SELECT max(seq) FROM updates), 0)) + 1,
       -- everything pending now goes to held below
       max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'updates'), 0),
           coalesce((SELECT max(seq) FROM updates), 0)),
       (SELECT count(*) FROM updates u JOIN profiles p ON p.id = u.profile WHERE u.state = 'live'
        AND u.seq > p.done_seq AND NOT (p.batch IS NOT NULL AND u.seq <= p.batch_seq)),
       (SELECT count(*) FROM updates u JOIN profiles p ON p.id = u.profile WHERE u.state = 'live'
        AND u.seq > p.done_seq AND p.batch IS NOT NULL AND u.seq <= p.batch_seq),
       (SELECT count(*) FROM updates u JOIN profiles p ON p.id = u.profile WHERE u.state = 'live'
        AND u.seq <= p.done_seq),
       (SELECT count(*) FROM updates WHERE state = 'superseded'),
       (SELECT count(*) FROM updates WHERE state = 'dead'),
       (SELECT coalesce(max(id), 0) FROM profiles),
       (SELECT count(*) FROM profile_keys), 0,
       coalesce((SELECT max(done_at_ms) FROM profiles), 0),
       (SELECT min(u.enqueued_at_ms) FROM updates u JOIN profiles p ON p.id = u.profile
        WHERE u.state = 'live' AND u.seq > p.done_seq
          AND NOT (p.batch IS NOT NULL AND u.seq <= p.batch_seq));

-- A Bloom filter over profile_keys, so that a bulk import of new profiles
-- does not probe the big table for each one (pobox writes it on merges).
CREATE TABLE key_filter (
	one  INTEGER PRIMARY KEY CHECK (one = 1),
	gen  INTEGER NOT NULL,       -- tallies.key_filter_gen it was built for
	keys INTEGER NOT NULL,       -- keys it was sized for
	bits BLOB NOT NULL
) STRICT;

-- ---------------------------------------------------------------------
-- Batches: their members, the seq they were cut at, the live updates
-- they hold; who left an unfinished one early; counts by lane and state
-- (kept by triggers: batch state changes are few).
--
-- A batch's row changes at every step of its delivery (state, polls,
-- status), and SQLite writes a row whole: the body (tens of MB) and the
-- member list (megabytes) live beside it, in parts of about a megabyte
-- that are written once, as a cut makes them, so neither a cut nor a send
-- ever holds a whole batch.
ALTER TABLE batches ADD COLUMN batch_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE batches ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
CREATE TABLE batch_payloads (
	batch   INTEGER NOT NULL,      -- batches.id
	part    INTEGER NOT NULL,      -- in order: 0 is the header's stream
	payload BLOB NOT NULL,         -- zlib: the parts, joined, are the exact
	                               -- bytes to send (zpayload.h)
	PRIMARY KEY (batch, part)
) STRICT;
INSERT INTO batch_payloads (batch, part, payload)
SELECT id, 0, payload FROM batches WHERE lane = 'bulk';
CREATE TABLE batch_members (
	batch   INTEGER NOT NULL,      -- batches.id
	part    INTEGER NOT NULL,
	members TEXT NOT NULL,         -- JSON array of profiles.id: the batch's
	                               -- members are those of all its parts
	PRIMARY KEY (batch, part)
) STRICT;
INSERT INTO batch_members (batch, part, members)
SELECT b.id, 0, (SELECT json_group_array(id) FROM (SELECT id FROM profiles p
                 WHERE p.batch = b.id ORDER BY id))
FROM batches b WHERE b.state IN ('ready', 'sending', 'submitted')
  AND EXISTS (SELECT 1 FROM profiles p WHERE p.batch = b.id);
UPDATE batches SET
	batch_seq = coalesce((SELECT max(p.batch_seq) FROM profiles p WHERE p.batch = batches.id), 0),
	held = (SELECT count(*) FROM profiles p JOIN updates u ON u.profile = p.id
	        WHERE p.batch = batches.id AND u.state = 'live' AND u.seq > p.done_seq
	          AND u.seq <= p.batch_seq)
WHERE state IN ('ready', 'sending', 'submitted');
ALTER TABLE batches DROP COLUMN payload;

CREATE TABLE batch_left (
	batch   INTEGER NOT NULL,
	profile INTEGER NOT NULL,
	PRIMARY KEY (batch, profile)
) STRICT, WITHOUT ROWID;

-- Pending profiles a cut has seen and left (fenced by a batch, or waiting
-- for a retry time).
CREATE TABLE held (
	profile  INTEGER PRIMARY KEY,
	since_ms INTEGER NOT NULL          -- enqueue time of its oldest pending update
) STRICT;
INSERT INTO held (profile, since_ms)
SELECT u.profile, min(u.enqueued_at_ms) FROM updates u JOIN profiles p ON p.id = u.profile
WHERE u.state = 'live' AND u.seq > p.done_seq AND NOT (p.batch IS NOT NULL AND u.seq <= p.batch_seq)
GROUP BY u.profile;

CREATE TABLE batch_counts (
	lane  TEXT NOT NULL,
	state TEXT NOT NULL,
	n     INTEGER NOT NULL,
	PRIMARY KEY (lane, state)
) STRICT, WITHOUT ROWID;
INSERT INTO batch_counts (lane, state, n) SELECT lane, state, count(*) FROM batches GROUP BY 1, 2;

-- batch_gen tells a process that the members of unfinished batches may
-- have changed (it keeps them in memory to fence profiles).
CREATE TRIGGER batch_counts_insert AFTER INSERT ON batches
BEGIN
	INSERT INTO batch_counts (lane, state, n) VALUES (NEW.lane, NEW.state, 1)
	ON CONFLICT (lane, state) DO UPDATE SET n = n + 1;
	UPDATE tallies SET batch_gen = batch_gen + 1;
END;
CREATE TRIGGER batch_counts_update AFTER UPDATE OF state ON batches WHEN OLD.state <> NEW.state
BEGIN
	UPDATE batch_counts SET n = n - 1 WHERE lane = OLD.lane AND state = OLD.state;
	INSERT INTO batch_counts (lane, state, n) VALUES (NEW.lane, NEW.state, 1)
	ON CONFLICT (lane, state) DO UPDATE SET n = n + 1;
	UPDATE tallies SET batch_gen = batch_gen + 1;
END;
CREATE TRIGGER batch_members_insert AFTER INSERT ON batch_members
BEGIN
	UPDATE tallies SET batch_gen = batch_gen + 1;
END;
CREATE TRIGGER batch_members_update AFTER UPDATE OF members ON batch_members
BEGIN
	UPDATE tallies SET batch_gen = batch_gen + 1;
END;
CREATE TRIGGER batch_members_delete AFTER DELETE ON batch_members
BEGIN
	UPDATE tallies SET batch_gen = batch_gen + 1;
END;
CREATE TRIGGER batch_counts_delete AFTER DELETE ON batches
BEGIN
	UPDATE batch_counts SET n = n - 1 WHERE lane = OLD.lane AND state = OLD.state;
	UPDATE tallies SET batch_gen = batch_gen + 1;
	DELETE FROM batch_payloads WHERE batch = OLD.id;
	DELETE FROM batch_members WHERE batch = OLD.id;
END;
CREATE TRIGGER batch_left_insert AFTER INSERT ON batch_left
BEGIN
	UPDATE tallies SET batch_gen = batch_gen + 1;
END;

-- ---------------------------------------------------------------------
-- Out with the old layout.
DROP VIEW v_dead;
DROP VIEW v_profile_state;
DROP VIEW v_status;
DROP VIEW v_pending;
DROP VIEW v_updates;
DROP TRIGGER enqueue_insert;
DROP VIEW enqueue;
DROP TABLE updates;
DROP TABLE profile_state;
DROP TABLE profiles;
ALTER TABLE profiles_v5 RENAME TO profiles;
-- (no index on profiles but its key: profiles_in_batch gave way to batch
-- members, profiles_retry_at to held, which carries what waits)


-- ---------------------------------------------------------------------
-- Views for people: the same columns and meanings as before.

-- Every update of every write, one row each (not for heavy use: it
-- expands the JSON of every write it reads).
CREATE VIEW v_cells AS
SELECT w.seq + e.key AS seq, w.seq AS write_seq, w.profile,
       CAST(json_extract(s.attrs, '$[' || e.key || ']') AS INTEGER) AS attr,
       e.value AS value, w.enqueued_at_ms, w.source, w.urgent, w.fates
FROM writes w JOIN shapes s ON s.id = w.shape, json_each(w.cells) e
WHERE e.type <> 'null';

-- The members of unfinished batches (fenced: their newer updates wait).
CREATE VIEW v_in_batch AS
SELECT CAST(e.value AS INTEGER) AS profile, b.id AS batch, b.batch_seq
FROM batches b JOIN batch_members m ON m.batch = b.id, json_each(m.members) e
WHERE b.state IN ('ready', 'sending', 'submitted')
  AND NOT EXISTS (SELECT 1 FROM batch_left l WHERE l.batch = b.id AND l.profile = CAST(e.value AS INTEGER));

CREATE VIEW v_updates AS
WITH ib AS MATERIALIZED (SELECT * FROM v_in_batch)
SELECT c.seq,
       CASE p.id_type WHEN 1 THEN 'pcId' ELSE 'thirdPartyId' END AS id_type,
       p.profile_id,
       a.name AS attr,
       c.value,
       CASE WHEN f.state IS NOT NULL THEN f.state
            WHEN c.seq <= p.done_seq THEN 'delivered'
            WHEN ib.batch IS NOT NULL AND c.seq <= ib.batch_seq THEN 'batched'
            ELSE 'pending' END AS state,
       c.urgent,
       s.name AS source,
       strftime('%Y-%m-%dT%H:%M:%fZ', c.enqueued_at_ms / 1000.0, 'unixepoch') AS enqueued_at,
       CASE WHEN f.state IS NULL AND c.seq > p.done_seq AND c.seq <= ib.batch_seq THEN ib.batch END AS batch,
       f.superseded_by,
       CASE WHEN f.state IS NULL AND c.seq > p.done_seq THEN p.attempts ELSE coalesce(f.attempts, 0) END AS attempts,
       CASE WHEN f.state IS NULL AND c.seq > p.done_seq THEN p.last_error ELSE f.last_error END AS last_error
FROM v_cells c
JOIN profiles p ON p.id = c.profile
JOIN attributes a ON a.id = c.attr
LEFT JOIN sources s ON s.id = c.source
LEFT JOIN fates f ON c.fates > 0 AND f.seq = c.seq
LEFT JOIN ib ON ib.profile = c.profile
UNION ALL
SELECT st.seq, CASE st.id_type WHEN 1 THEN 'pcId' ELSE 'thirdPartyId' END, st.profile_id,
       a.name, st.value, 'pending', st.urgent, s.name,
       strftime('%Y-%m-%dT%H:%M:%fZ', st.enqueued_at_ms / 1000.0, 'unixepoch'),
       NULL, NULL, 0, NULL
FROM staged st
JOIN attributes a ON a.id = st.attr
LEFT JOIN sources s ON s.id = st.source;

-- Pending updates, oldest first, with their age: read through the pending
-- set (writes above the cut watermark, held profiles), so it costs what is
-- pending, not what the outbox holds.
CREATE VIEW v_pending AS
WITH ib AS MATERIALIZED (SELECT * FROM v_in_batch),
cand AS (
	SELECT profile FROM held
	UNION SELECT profile FROM writes WHERE seq > (SELECT cut_seq FROM tallies)
),
c AS (
	SELECT w.seq + e.key AS seq, w.profile, w.shape, e.value, w.enqueued_at_ms, w.source,
	       w.urgent, w.fates, e.key AS pos
	FROM cand JOIN profiles p ON p.id = cand.profile
	JOIN writes w ON w.profile = p.id AND w.seq > p.done_seq
	LEFT JOIN ib ON ib.profile = p.id,
	     json_each(w.cells) e
	WHERE e.type <> 'null' AND (ib.batch IS NULL OR w.seq > ib.batch_seq)
)
SELECT x.*, CAST((julianday('now') - julianday(x.enqueued_at)) * 86400 AS INTEGER) AS age_s
FROM (
	SELECT c.seq, CASE p.id_type WHEN 1 THEN 'pcId' ELSE 'thirdPartyId' END AS id_type,
	       p.profile_id, a.name AS attr, c.value, 'pending' AS state, c.urgent, s.name AS source,
	       strftime('%Y-%m-%dT%H:%M:%fZ', c.enqueued_at_ms / 1000.0, 'unixepoch') AS enqueued_at,
	       NULL AS batch, NULL AS superseded_by, p.attempts, p.last_error
	FROM c JOIN profiles p ON p.id = c.profile
	JOIN shapes sh ON sh.id = c.shape
	JOIN attributes a ON a.id = CAST(json_extract(sh.attrs, '$[' || c.pos || ']') AS INTEGER)
	LEFT JOIN sources s ON s.id = c.source
	WHERE c.fates = 0 OR NOT EXISTS (SELECT 1 FROM fates f WHERE f.seq = c.seq)
	UNION ALL
	SELECT st.seq, CASE st.id_type WHEN 1 THEN 'pcId' ELSE 'thirdPartyId' END, st.profile_id,
	       a.name, st.value, 'pending', st.urgent, s.name,
	       strftime('%Y-%m-%dT%H:%M:%fZ', st.enqueued_at_ms / 1000.0, 'unixepoch'),
	       NULL, NULL, 0, NULL
	FROM staged st JOIN attributes a ON a.id = st.attr LEFT JOIN sources s ON s.id = st.source
) x
ORDER BY x.seq;

-- Counts per state (all five, zeros included) and the oldest pending
-- time: from the tallies, never a scan.
CREATE VIEW v_status AS
WITH t AS (SELECT * FROM tallies)
SELECT s.state, s.n AS updates,
       CASE WHEN s.state = 'pending' AND t.pending > 0 AND t.oldest_pending_ms IS NOT NULL
            THEN strftime('%Y-%m-%dT%H:%M:%fZ', t.oldest_pending_ms / 1000.0, 'unixepoch') END
       AS oldest_enqueued_at
FROM (SELECT 1 AS ord, 'pending' AS state, pending AS n FROM t
      UNION ALL SELECT 2, 'batched', batched FROM t
      UNION ALL SELECT 3, 'delivered', delivered FROM t
      UNION ALL SELECT 4, 'superseded', superseded FROM t
      UNION ALL SELECT 5, 'dead', dead FROM t) s, t
ORDER BY s.ord;

-- The last value Target was sent for each profile attribute: the folded
-- values and the delivered writes not folded yet, each kept unless a newer
-- delivered update of the same attribute exists.  Written flat (no window,
-- no GROUP BY) so that a filter on profile_id reaches the profiles scan and
-- one profile costs its own writes, not the outbox's.
CREATE VIEW v_profile_state AS
WITH cand AS (
	SELECT p.id AS profile, p.id_type, p.profile_id, p.sent_seq, p.done_seq,
	       CAST(json_extract(e.value, '$[0]') AS INTEGER) AS attr,
	       json_extract(e.value, '$[1]') AS value, json_extract(e.value, '$[2]') AS seq,
	       json_extract(e.value, '$[3]') AS sent_at_ms
	FROM profiles p JOIN sent x ON x.profile = p.id, json_each(x.cells) e
	UNION ALL
	SELECT p.id, p.id_type, p.profile_id, p.sent_seq, p.done_seq,
	       CAST(json_extract(s.attrs, '$[' || e.key || ']') AS INTEGER),
	       e.value, w.seq + e.key, p.done_at_ms
	FROM profiles p
	JOIN writes w ON w.profile = p.id AND w.seq > p.sent_seq AND w.seq <= p.done_seq
	JOIN shapes s ON s.id = w.shape, json_each(w.cells) e
	WHERE e.type <> 'null' AND w.seq + e.key <= p.done_seq
	  AND (w.fates = 0 OR NOT EXISTS (SELECT 1 FROM fates f WHERE f.seq = w.seq + e.key))
)
SELECT CASE c.id_type WHEN 1 THEN 'pcId' ELSE 'thirdPartyId' END AS id_type, c.profile_id,
       a.name AS attr, c.value,
       strftime('%Y-%m-%dT%H:%M:%fZ', c.sent_at_ms / 1000.0, 'unixepoch') AS sent_at
FROM cand c
JOIN attributes a ON a.id = c.attr
WHERE NOT EXISTS (
	SELECT 1 FROM writes w JOIN shapes s ON s.id = w.shape, json_each(s.attrs) k
	WHERE w.profile = c.profile AND w.seq > c.seq AND w.seq > c.sent_seq
	  AND w.seq <= c.done_seq AND k.value = c.attr AND w.seq + k.key <= c.done_seq
	  AND json_type(w.cells, '$[' || k.key || ']') <> 'null'
	  AND (w.fates = 0 OR NOT EXISTS (SELECT 1 FROM fates f WHERE f.seq = w.seq + k.key)));

-- Dead updates with reason, last HTTP status, attempts and when they died.
CREATE VIEW v_dead AS
WITH d AS (
	SELECT f.*, (SELECT max(w.seq) FROM writes w WHERE w.seq <= f.seq) AS write_seq
	FROM fates f WHERE f.state = 'dead'
)
SELECT d.seq, CASE p.id_type WHEN 1 THEN 'pcId' ELSE 'thirdPartyId' END AS id_type,
       p.profile_id, a.name AS attr,
       json_extract(w.cells, '$[' || (d.seq - w.seq) || ']') AS value,
       d.attempts, d.last_http_status, d.last_error AS reason, s.name AS source,
       strftime('%Y-%m-%dT%H:%M:%fZ', w.enqueued_at_ms / 1000.0, 'unixepoch') AS enqueued_at,
       strftime('%Y-%m-%dT%H:%M:%fZ', d.dead_at_ms / 1000.0, 'unixepoch') AS dead_at
FROM d
JOIN writes w ON w.seq = d.write_seq
JOIN shapes sh ON sh.id = w.shape
JOIN profiles p ON p.id = w.profile
JOIN attributes a ON a.id = CAST(json_extract(sh.attrs, '$[' || (d.seq - w.seq) || ']') AS INTEGER)
LEFT JOIN sources s ON s.id = w.source
ORDER BY d.seq;

-- ---------------------------------------------------------------------
-- The sqlite3 producer path, with the same verdicts as before (schema
-- 0005's rules; tests/unit/test_enqueue_sql.c checks them against the C
-- rules).  Accepted rows go to `staged` with their seq.

CREATE VIEW enqueue (id_type, profile_id, attr, value, urgent, source) AS
SELECT NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;

CREATE TRIGGER enqueue_insert INSTEAD OF INSERT ON enqueue
BEGIN
	-- NUL bytes: before every other rule (GLOB and the length checks below
	-- cannot see past one, and an empty value must not hide a bad id)
	SELECT RAISE(ABORT, 'enqueue: id_type contains a NUL byte')
	WHERE instr(CAST(NEW.id_type AS BLOB), x'00') > 0;
	SELECT RAISE(ABORT, 'enqueue: profile_id contains a NUL byte')
	WHERE instr(CAST(NEW.profile_id AS BLOB), x'00') > 0;
	SELECT RAISE(ABORT, 'enqueue: attr contains a NUL byte')
	WHERE instr(CAST(NEW.attr AS BLOB), x'00') > 0;
	SELECT RAISE(ABORT, 'enqueue: value contains a NUL byte')
	WHERE instr(CAST(NEW.value AS BLOB), x'00') > 0;
	SELECT RAISE(ABORT, 'enqueue: source contains a NUL byte')
	WHERE instr(CAST(NEW.source AS BLOB), x'00') > 0;

	-- id type: pcId or thirdPartyId (and aliases), never ECID
	SELECT RAISE(ABORT, 'enqueue: id_type is missing: use ''thirdPartyId'' or ''pcId''')
	WHERE NEW.id_type IS NULL OR NEW.id_type = '';
	SELECT RAISE(ABORT, 'enqueue: id_type ECID (marketingCloudVisitorId) is not supported by Target''s profile update APIs: use thirdPartyId or pcId')
	WHERE lower(NEW.id_type) IN ('ecid', 'mcid', 'mcvid', 'marketingcloudvisitorid');
	SELECT RAISE(ABORT, 'enqueue: unknown id_type: use ''thirdPartyId'' (alias mbox3rdPartyId) or ''pcId'' (aliases mboxPC, tntId)')
	WHERE lower(NEW.id_type) NOT IN ('pcid', 'mboxpc', 'tntid', 'thirdpartyid', 'mbox3rdpartyid');

	-- profile id: 1..256 bytes, no control characters, thirdPartyId without + or /
	SELECT RAISE(ABORT, 'enqueue: profile_id is empty')
	WHERE NEW.profile_id IS NULL OR CAST(NEW.profile_id AS TEXT) = '';
	SELECT RAISE(ABORT, 'enqueue: profile_id is longer than 256 bytes (Target''s limit)')
	WHERE length(CAST(CAST(NEW.profile_id AS TEXT) AS BLOB)) > 256;
	SELECT RAISE(ABORT, 'enqueue: profile_id contains a control character')
	WHERE CAST(NEW.profile_id AS TEXT) GLOB ('*[' || char(1) || '-' || char(31) || char(127) || ']*');
	SELECT RAISE(ABORT, 'enqueue: a thirdPartyId may not contain ''+'' or ''/'' (Target refuses them)')
	WHERE lower(NEW.id_type) IN ('thirdpartyid', 'mbox3rdpartyid')
	  AND (instr(NEW.profile_id, '+') > 0 OR instr(NEW.profile_id, '/') > 0);

	-- attribute: "profile." stripped, 1..128 bytes, characters [A-Za-z0-9_.-], not reserved
	SELECT RAISE(ABORT, 'enqueue: attr is empty')
	WHERE NEW.attr IS NULL OR NEW.attr = '' OR NEW.attr = 'profile.';
	SELECT RAISE(ABORT, 'enqueue: attr is longer than 128 bytes (Target''s limit)')
	WHERE length(CAST(CASE WHEN substr(NEW.attr, 1, 8) = 'profile.' THEN substr(NEW.attr, 9) ELSE NEW.attr END AS BLOB)) > 128;
	SELECT RAISE(ABORT, 'enqueue: attr may contain only letters, digits, ''_'', ''-'' and ''.'', and may not start or end with ''.'' or contain ''..''')
	WHERE (CASE WHEN substr(NEW.attr, 1, 8) = 'profile.' THEN substr(NEW.attr, 9) ELSE NEW.attr END) GLOB '*[^A-Za-z0-9_.-]*'
	   OR (CASE WHEN substr(NEW.attr, 1, 8) = 'profile.' THEN substr(NEW.attr, 9) ELSE NEW.attr END) GLOB '.*'
	   OR (CASE WHEN substr(NEW.attr, 1, 8) = 'profile.' THEN substr(NEW.attr, 9) ELSE NEW.attr END) GLOB '*.'
	   OR instr(NEW.attr, '..') > 0;
	SELECT RAISE(ABORT, 'enqueue: attr is a name Target reserves for its own profile data or for profile ids')
	WHERE (CASE WHEN substr(NEW.attr, 1, 8) = 'profile.' THEN substr(NEW.attr, 9) ELSE NEW.attr END)
	      IN (SELECT name FROM reserved_attributes);

	-- value: empty is not an update (Target ignores it); otherwise at most max_value_chars
	SELECT RAISE(IGNORE) WHERE NEW.value IS NULL OR CAST(NEW.value AS TEXT) = '';
	SELECT RAISE(ABORT, 'enqueue: value is longer than the configured max_value_chars (see settings)')
	WHERE length(CAST(NEW.value AS TEXT)) > (SELECT value FROM settings WHERE key = 'max_value_chars');
	SELECT RAISE(ABORT, 'enqueue: urgent must be 0 or 1')
	WHERE NEW.urgent IS NOT NULL AND NEW.urgent NOT IN (0, 1);

	-- intern the names, stage the update with the next seq
	INSERT OR IGNORE INTO attributes (name)
	VALUES (CASE WHEN substr(NEW.attr, 1, 8) = 'profile.' THEN substr(NEW.attr, 9) ELSE NEW.attr END);
	INSERT OR IGNORE INTO sources (name) VALUES (coalesce(NEW.source, 'sqlite3'));
	INSERT INTO staged (seq, id_type, profile_id, attr, value, enqueued_at_ms, source, urgent)
	VALUES ((SELECT next_seq FROM tallies),
	        CASE WHEN lower(NEW.id_type) IN ('pcid', 'mboxpc', 'tntid') THEN 1 ELSE 2 END,
	        CAST(NEW.profile_id AS TEXT),
	        (SELECT id FROM attributes
	         WHERE name = (CASE WHEN substr(NEW.attr, 1, 8) = 'profile.' THEN substr(NEW.attr, 9) ELSE NEW.attr END)),
	        CAST(NEW.value AS TEXT),
	        CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER),
	        (SELECT id FROM sources WHERE name = coalesce(NEW.source, 'sqlite3')),
	        coalesce(NEW.urgent, 0));
	UPDATE tallies SET next_seq = next_seq + 1, pending = pending + 1,
	       oldest_pending_ms = min(coalesce(oldest_pending_ms, (SELECT enqueued_at_ms FROM staged WHERE seq = next_seq)),
	                               (SELECT enqueued_at_ms FROM staged WHERE seq = next_seq));
END;
