-- 0005_hardening.sql: the sqlite3 producer path refuses NUL bytes.
--
-- A NUL inside a text value is invisible to GLOB and to anything that reads
-- the value as a C string, so the checks of 0001 let a profile id, attribute
-- name or value carrying one through (a value 'v' || char(0) || 'x' went out
-- to Target as v%00x).  The C API and `pobox import` refuse NUL with its byte
-- offset (src/validate.c); this trigger refuses it too, first, so that the
-- verdicts stay the same on every path (tests/unit/test_enqueue_sql.c).
-- SQLite before 3.47 takes only a literal message in RAISE, so the SQL
-- message names the column but not the offset; find it with
--   SELECT instr(CAST(x AS BLOB), x'00') - 1
--
-- The rest of the trigger is 0001's, unchanged.

DROP TRIGGER enqueue_insert;

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
