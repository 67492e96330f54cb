-- 0008_fleet.sql: this host's side of a fleet-wide budget (fleet_url).
--
-- With fleet_url set, single calls are not charged to this outbox's own
-- ledger alone: they draw on leases, capacity the coordinator (PostgreSQL)
-- has granted to this host and already charged to the account.  Every
-- single call takes its unit from a lease in the same transaction that
-- reserves it (fleet_leases.reserved), and when it is settled its unit is
-- counted as used (fleet_leases.used, and per bucket in fleet_lease_use,
-- which is what the host reports when it closes the lease) or given back.
-- A lease is usable only until start_by_mono_ms on this machine's monotonic
-- clock (boot_id says which boot that clock belongs to): no wall clock and
-- no other host's clock decides anything here.
--
-- fleet_usage keeps every call's bucket for one window, on the
-- coordinator's clock: if the coordinator ever loses data, this is what the
-- host re-reports.  Times named *_coord_ms and buckets (k) are the
-- coordinator's milliseconds; *_mono_ms are this machine's monotonic clock.

CREATE TABLE fleet_state (
	id             INTEGER PRIMARY KEY CHECK (id = 1),
	account        TEXT NOT NULL,
	host           TEXT NOT NULL,
	incarnation    TEXT NOT NULL,           -- random: a new outbox is a new host life
	next_seq       INTEGER NOT NULL DEFAULT 1,
	epoch          TEXT,                    -- the coordinator's, as last seen
	serial         INTEGER NOT NULL DEFAULT 0,
	reported_epoch TEXT,                    -- the epoch this host re-reported its history in
	-- the account, from the coordinator
	budget         INTEGER, margin INTEGER, window_ms INTEGER, bucket_ms INTEGER,
	bulk_limit     INTEGER, urgent_share REAL,
	lease_ms       INTEGER, reserve_ms INTEGER,
	-- the fleet as of the last answer (for status and routing)
	spent          INTEGER, free INTEGER, hosts INTEGER, learning INTEGER,
	grant_rate     REAL NOT NULL DEFAULT 0,  -- units granted to this host per second, recent
	soon           INTEGER NOT NULL DEFAULT 0, -- this host's part of what frees within a lease life
	last_contact_ms INTEGER,                 -- wall clock of the last answer
	last_attempt_ms INTEGER,
	reachable      INTEGER NOT NULL DEFAULT 0,
	last_error     TEXT,
	requests       INTEGER NOT NULL DEFAULT 0 -- round trips to the coordinator
) STRICT;

CREATE TABLE fleet_leases (
	id               INTEGER PRIMARY KEY,   -- the coordinator's grant id
	kind             TEXT NOT NULL CHECK (kind IN ('lease', 'reserve')),
	epoch            TEXT NOT NULL,
	granted          INTEGER NOT NULL CHECK (granted > 0),
	used             INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0),
	reserved         INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0),
	grant_coord_ms   INTEGER NOT NULL,      -- when it was granted
	sent_mono_ms     INTEGER NOT NULL,      -- when the request left (adjusted for replays)
	boot_id          TEXT NOT NULL,
	life_ms          INTEGER NOT NULL,
	start_by_mono_ms INTEGER NOT NULL,      -- no call starts after this
	charge_k         INTEGER NOT NULL,      -- where the coordinator charged it
	closed           INTEGER NOT NULL DEFAULT 0,
	granted_at_ms    INTEGER NOT NULL       -- wall clock, for people
) STRICT;

CREATE TABLE fleet_lease_use (
	lease INTEGER NOT NULL,
	k     INTEGER NOT NULL,
	n     INTEGER NOT NULL,
	PRIMARY KEY (lease, k)
) STRICT, WITHOUT ROWID;

CREATE TABLE fleet_usage (
	k INTEGER PRIMARY KEY,
	n INTEGER NOT NULL
) STRICT;

-- The leases held, for people.
CREATE VIEW v_fleet_leases AS
SELECT id, kind, granted, used, reserved, granted - used - reserved AS left,
       strftime('%Y-%m-%dT%H:%M:%fZ', granted_at_ms / 1000.0, 'unixepoch') AS granted_at,
       life_ms / 1000.0 AS life_s, CASE closed WHEN 1 THEN 'closed' ELSE 'open' END AS state
FROM fleet_leases ORDER BY id;
