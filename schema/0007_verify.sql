-- 0007_verify.sql: what `pobox verify` found when it compared what pobox
-- sent with what Target holds (the Profile Fetch API).
--
-- One row per run in `verifications` (its figures: what status
-- --prometheus and the metrics file show for the last one), and the
-- attributes that did not match in `verify_findings` (at most 1000 per
-- run; the counts in the run's row are always complete).  pobox keeps the
-- last 100 runs.  Nothing else reads these tables: they are a record for
-- people and monitoring.
--
-- Classes of an attribute (src/verify.h):
--   matching          Target holds the value pobox sent last
--   not_yet_applied   Target holds an older value, or not this attribute,
--                     or not the profile, and pobox sent it less than the
--                     grace period ago (Target applies updates within an
--                     hour, at worst in 24 hours)
--   different         Target holds another value, modified after pobox's
--                     delivery (another writer); or, past the grace, still
--                     an older one (a lost v2 override, or never applied)
--   missing           past the grace, Target has no such attribute, or no
--                     such profile

CREATE TABLE verifications (
	id                INTEGER PRIMARY KEY,
	started_at_ms     INTEGER NOT NULL,
	finished_at_ms    INTEGER NOT NULL,
	selection         TEXT NOT NULL,      -- the options it ran with, e.g. "--sample 100 --since 1d"
	grace_ms          INTEGER NOT NULL,
	population        INTEGER NOT NULL,   -- profiles the selection matched
	profiles          INTEGER NOT NULL,   -- profiles fetched and compared
	fetch_errors      INTEGER NOT NULL,   -- profiles that could not be fetched
	matching          INTEGER NOT NULL,   -- attributes in each class
	not_yet_applied   INTEGER NOT NULL,
	different         INTEGER NOT NULL,
	missing           INTEGER NOT NULL,
	-- how long ago pobox sent the attributes of each class: least, most (ms)
	matching_min_age_ms INTEGER, matching_max_age_ms INTEGER,
	not_yet_applied_min_age_ms INTEGER, not_yet_applied_max_age_ms INTEGER,
	different_min_age_ms INTEGER, different_max_age_ms INTEGER,
	missing_min_age_ms INTEGER, missing_max_age_ms INTEGER,
	interrupted       INTEGER NOT NULL DEFAULT 0 CHECK (interrupted IN (0, 1)),
	exit_code         INTEGER NOT NULL
) STRICT;

CREATE TABLE verify_findings (
	verification      INTEGER NOT NULL,   -- verifications.id
	n                 INTEGER NOT NULL,   -- in the order found
	class             TEXT NOT NULL CHECK (class IN ('not_yet_applied', 'different', 'missing')),
	why               TEXT NOT NULL CHECK (why IN ('another_writer', 'older_value', 'no_attribute',
	                                               'no_profile')),
	id_type           TEXT NOT NULL,
	profile_id        TEXT NOT NULL,
	attr              TEXT NOT NULL,
	sent              TEXT NOT NULL,      -- the value pobox sent last
	sent_at_ms        INTEGER NOT NULL,   -- when Target confirmed it (or took the batch, in_flight)
	in_flight         INTEGER NOT NULL CHECK (in_flight IN (0, 1)), -- in a batch Target has
	                                      -- accepted and not yet reported complete
	target            TEXT,               -- what Target holds; NULL: nothing
	target_modified_at_ms INTEGER,        -- its modifiedAt; NULL: none or unreadable
	PRIMARY KEY (verification, n)
) STRICT, WITHOUT ROWID;

CREATE VIEW v_verifications AS
SELECT id,
       strftime('%Y-%m-%dT%H:%M:%fZ', started_at_ms / 1000.0, 'unixepoch') AS started_at,
       round((finished_at_ms - started_at_ms) / 1000.0, 1) AS duration_s,
       selection, grace_ms / 1000 AS grace_s, population, profiles, fetch_errors,
       matching, not_yet_applied, different, missing, interrupted, exit_code
FROM verifications;

CREATE VIEW v_verify_findings AS
SELECT f.verification, f.class, f.why, f.id_type, f.profile_id, f.attr, f.sent,
       strftime('%Y-%m-%dT%H:%M:%fZ', f.sent_at_ms / 1000.0, 'unixepoch') AS sent_at,
       f.in_flight, f.target,
       strftime('%Y-%m-%dT%H:%M:%fZ', f.target_modified_at_ms / 1000.0, 'unixepoch') AS target_modified_at
FROM verify_findings f
ORDER BY f.verification, f.n;
