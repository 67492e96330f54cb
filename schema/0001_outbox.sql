-- 0001_outbox.sql: the outbox itself - interned keys, the append-only
-- updates table, settings, and the operator views over them.
--
-- Times are stored as INTEGER Unix milliseconds (columns end in _ms) so that
-- ordering and arithmetic are exact; every view shows them as readable UTC
-- text.  States are readable TEXT guarded by CHECK constraints.
--
-- An update row's stored `state` is its fate: `live` (it still counts),
-- `superseded` (a newer value for the same profile and attribute won) or
-- `dead` (given up, with the reason).  Whether a live update is waiting, in
-- a batch or delivered is kept per profile, not per row (0002 adds the
-- watermarks), because flipping millions of rows at every step costs five
-- times what the scheduler may spend; the views show the derived state.
--
-- Nothing here deletes an update: rows leave only by housekeeping after
-- delivery (retention) or by an operator's explicit purge.

PRAGMA application_id = 1347371608;  -- 0x504F4258, "POBX": marks the file as a pobox outbox

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value ANY
) STRICT, WITHOUT ROWID;

-- Limits the `enqueue` view's trigger applies; pobox writes its configured
-- values here when it opens the outbox, so sqlite3 producers obey the same
-- limit as the C API.
INSERT INTO settings(key, value) VALUES ('max_value_chars', 256);

CREATE TABLE profiles (
	id         INTEGER PRIMARY KEY,
	id_type    TEXT NOT NULL CHECK (id_type IN ('pcId', 'thirdPartyId')),
	profile_id TEXT NOT NULL CHECK (length(CAST(profile_id AS BLOB)) BETWEEN 1 AND 256),
	UNIQUE (id_type, profile_id)
) STRICT;

CREATE TABLE attributes (
	id   INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 128)
) STRICT;

CREATE TABLE sources (
	id   INTEGER PRIMARY KEY,
	name TEXT NOT NULL UNIQUE
) STRICT;

CREATE TABLE updates (
	-- enqueue order; newest wins.  AUTOINCREMENT: a seq is never reused, even
	-- after housekeeping deletes the newest row, because per-profile
	-- watermarks (0002) compare against it.
	seq           INTEGER PRIMARY KEY AUTOINCREMENT,
	profile       INTEGER NOT NULL,             -- profiles.id
	attr          INTEGER NOT NULL,             -- attributes.id
	value         TEXT NOT NULL CHECK (value <> ''),
	enqueued_at_ms INTEGER NOT NULL,
	source        INTEGER,                      -- sources.id
	urgent        INTEGER NOT NULL DEFAULT 0 CHECK (urgent IN (0, 1)),
	state         TEXT NOT NULL DEFAULT 'live'
	              CHECK (state IN ('live', 'superseded', 'dead')),
	superseded_by INTEGER,                      -- updates.seq of the value that won
	attempts      INTEGER NOT NULL DEFAULT 0,
	last_error    TEXT
) STRICT;

-- One index serves the scheduler (live rows of a profile, by attribute, in
-- enqueue order), counts by state, and coalescing.  Profiles are interned in arrival order,
-- so inserts land at the right edge of this index and stay cheap.
CREATE INDEX updates_by_state ON updates (state, profile, attr);

-- Attribute names pobox refuses: names Target uses for its own profile data
-- (a bulk column or profile.<name> parameter with one of these names would
-- collide with it) and the id parameter names.  src/validate.c holds the same
-- list; tests/unit/test_enqueue_sql.c checks the two are equal.
CREATE TABLE reserved_attributes (
	name TEXT PRIMARY KEY
) STRICT, WITHOUT ROWID;
INSERT INTO reserved_attributes (name) VALUES
	('averageDaysBetweenVisits'), ('browserTime'), ('geolocation'), ('mobile'),
	('parameter'), ('sessionCount'), ('user'),
	('pcId'), ('thirdPartyId'), ('mbox3rdPartyId'), ('mboxPC'), ('tntId'),
	('marketingCloudVisitorId');

-- ---------------------------------------------------------------------
-- Views for people.  Readable names, readable UTC times, ages in seconds.

CREATE VIEW v_updates AS
SELECT u.seq,
       p.id_type,
       p.profile_id,
       a.name AS attr,
       u.value,
       CASE u.state WHEN 'live' THEN 'pending' ELSE u.state END AS state,
       u.urgent,
       s.name AS source,
       strftime('%Y-%m-%dT%H:%M:%fZ', u.enqueued_at_ms / 1000.0, 'unixepoch') AS enqueued_at,
       NULL AS batch,
       u.superseded_by,
       u.attempts,
       u.last_error
FROM updates u
JOIN profiles p ON p.id = u.profile
JOIN attributes a ON a.id = u.attr
LEFT JOIN sources s ON s.id = u.source;

-- Pending updates, oldest first, with their age.
CREATE VIEW v_pending AS
SELECT v.*,
       CAST((julianday('now') - julianday(v.enqueued_at)) * 86400 AS INTEGER) AS age_s
FROM v_updates v
WHERE v.state = 'pending'
ORDER BY v.seq;

-- Counts by state; every state appears, with 0 when empty.
CREATE VIEW v_status AS
WITH states(state, ord) AS (
	VALUES ('pending', 1), ('batched', 2), ('delivered', 3), ('superseded', 4), ('dead', 5)
)
SELECT s.state,
       (SELECT count(*) FROM v_updates u WHERE u.state = s.state) AS updates,
       CASE WHEN s.state = 'pending' THEN
            (SELECT min(enqueued_at) FROM v_updates WHERE state = 'pending')
       END AS oldest_enqueued_at
FROM states s
ORDER BY s.ord;

-- ---------------------------------------------------------------------
-- The sqlite3 producer path:
--
--   INSERT INTO enqueue(id_type, profile_id, attr, value) VALUES ('thirdPartyId', 'c-42', 'tier', 'gold');
--
-- The trigger applies the same rules as src/validate.c (tests/unit/
-- test_enqueue_sql.c runs one corpus through both and demands the same
-- verdicts).  It cannot check UTF-8 well-formedness, which SQL cannot see;
-- text typed into the sqlite3 shell is UTF-8 already.

CREATE VIEW enqueue (id_type, profile_id, attr, value, urgent, source) AS
SELECT NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;

CREATE TRIGGER enqueue_insert INSTEAD OF INSERT ON enqueue
BEGIN
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

	-- intern and append
	INSERT OR IGNORE INTO profiles (id_type, profile_id)
	VALUES (CASE WHEN lower(NEW.id_type) IN ('pcid', 'mboxpc', 'tntid') THEN 'pcId' ELSE 'thirdPartyId' END,
	        CAST(NEW.profile_id AS TEXT));
	INSERT OR IGNORE INTO attributes (name)
	VALUES (CASE WHEN substr(NEW.attr, 1, 8) = 'profile.' THEN substr(NEW.attr, 9) ELSE NEW.attr END);
	INSERT OR IGNORE INTO sources (name) VALUES (coalesce(NEW.source, 'sqlite3'));
	INSERT INTO updates (profile, attr, value, enqueued_at_ms, source, urgent)
	VALUES ((SELECT id FROM profiles
	         WHERE id_type = (CASE WHEN lower(NEW.id_type) IN ('pcid', 'mboxpc', 'tntid') THEN 'pcId' ELSE 'thirdPartyId' END)
	           AND profile_id = CAST(NEW.profile_id AS TEXT)),
	        (SELECT id FROM attributes
	         WHERE name = (CASE WHEN substr(NEW.attr, 1, 8) = 'profile.' THEN substr(NEW.attr, 9) ELSE NEW.attr END)),
	        CAST(NEW.value AS TEXT),
	        CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER),
	        (SELECT id FROM sources WHERE name = coalesce(NEW.source, 'sqlite3')),
	        coalesce(NEW.urgent, 0));
END;
