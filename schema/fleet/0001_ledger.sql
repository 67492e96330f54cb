-- 0001_ledger.sql: the fleet's leased budget ledger, on the coordinator
-- (PostgreSQL).  Applied by `pobox fleet init` in one transaction, in the
-- schema pobox_fleet, and recorded in pobox_fleet.schema_version.
--
-- Hosts never touch these tables: they call the functions below, which run
-- with the rights of the schema's owner (SECURITY DEFINER), so the hosts'
-- role needs only USAGE on the schema and EXECUTE on the functions (see
-- `pobox fleet init --grant ROLE`).
--
-- The ledger.  Times are milliseconds since the Unix epoch on the
-- coordinator's clock, the only clock that decides anything here.  A charge
-- is a number of calls placed at a bucket end k; the calls of a lane "spent"
-- at time t are the charges with k > t - window, future ones included.
--
--   * A grant adds its whole size as a charge at k = the end of the bucket
--     holding t + life + horizon: no call of the lease can start after
--     t + life (the host stops earlier, on its own monotonic clock) nor
--     reach Target more than `horizon` after it started.  A grant is made
--     only while spent(t) + size <= budget - margin.
--   * A report (the host closed the lease) removes that charge and adds
--     the calls the host made at the buckets it saw their answers in,
--     clamped into [grant time, k]: charges only ever move earlier or go
--     away, so a later window never holds more than it did.
--   * Target counts a call made at u in every window that holds u; its
--     charge sits at some k >= u from before u until k + window, so every
--     such window of Target's is inside the coordinator's.  Hence, with
--     durable commits, no rolling window holds more than budget - margin,
--     whatever hosts crash, lose the coordinator or see their clocks skew.
--
-- Idempotence: every host request carries a per-host sequence number; a
-- request with the number last answered gets the stored answer again
-- (status 'replay') and nothing is granted twice.  Reports are keyed by
-- lease id and apply once.
--
-- Data loss: accounts.serial grows with every request and is returned to
-- the host, which sends back the highest it has seen.  A host that has
-- seen a higher serial than the ledger holds proves the ledger went back
-- in time (a restore, a failover that lost commits): the epoch changes.  A
-- host whose epoch differs gets nothing until it has re-reported its calls
-- of the last window from its own outbox (status 'epoch', then a request
-- with its history); until every host seen in the last window has done so
-- (or a window plus a reserve life has passed), what those hosts held is
-- kept back from new grants ("learning").

CREATE TABLE pobox_fleet.accounts (
	account        text PRIMARY KEY,
	budget         bigint NOT NULL CHECK (budget >= 0),        -- single calls per window
	margin         bigint NOT NULL CHECK (margin >= 0),        -- never granted
	window_ms      bigint NOT NULL CHECK (window_ms >= 1440),
	bucket_ms      bigint NOT NULL CHECK (bucket_ms >= 1),     -- window / 1440
	bulk_limit     integer NOT NULL CHECK (bulk_limit >= 0),   -- bulk calls per bulk window
	bulk_window_ms bigint NOT NULL CHECK (bulk_window_ms >= 60),
	bulk_bucket_ms bigint NOT NULL CHECK (bulk_bucket_ms >= 1),-- bulk window / 60
	lease_ms       bigint NOT NULL CHECK (lease_ms >= 100),    -- a lease's life
	reserve_ms     bigint NOT NULL CHECK (reserve_ms >= 100),  -- a standing reserve's life
	permit_ms      bigint NOT NULL CHECK (permit_ms >= 100),   -- a bulk permit's life
	reserve_share  double precision NOT NULL CHECK (reserve_share BETWEEN 0 AND 1),
	urgent_share   double precision NOT NULL CHECK (urgent_share BETWEEN 0 AND 1),
	fleet_size     integer NOT NULL CHECK (fleet_size >= 0),   -- 0: the hosts seen in the window
	epoch          text NOT NULL,
	epoch_began_ms bigint NOT NULL,
	serial         bigint NOT NULL DEFAULT 0,
	created_at     timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 20);  -- updated by every request: room for HOT updates

CREATE TABLE pobox_fleet.charges (
	account text NOT NULL REFERENCES pobox_fleet.accounts ON DELETE CASCADE,
	lane    text NOT NULL CHECK (lane IN ('single', 'bulk')),
	k       bigint NOT NULL,
	n       bigint NOT NULL,
	PRIMARY KEY (account, lane, k)
) WITH (fillfactor = 70);

-- Open grants: leases and reserves (lane single), bulk permits (lane bulk).
CREATE TABLE pobox_fleet.leases (
	id         bigserial PRIMARY KEY,
	account    text NOT NULL REFERENCES pobox_fleet.accounts ON DELETE CASCADE,
	host       text NOT NULL,
	lane       text NOT NULL CHECK (lane IN ('single', 'bulk')),
	kind       text NOT NULL CHECK (kind IN ('lease', 'reserve', 'permit')),
	granted    bigint NOT NULL CHECK (granted > 0),
	k          bigint NOT NULL,
	granted_ms bigint NOT NULL,
	epoch      text NOT NULL
);
CREATE INDEX leases_host ON pobox_fleet.leases (account, host);
CREATE INDEX leases_k ON pobox_fleet.leases (account, k);

CREATE TABLE pobox_fleet.hosts (
	account      text NOT NULL REFERENCES pobox_fleet.accounts ON DELETE CASCADE,
	host         text NOT NULL,
	incarnation  text NOT NULL,          -- a new outbox is a new life: its numbers restart
	seq          bigint NOT NULL DEFAULT 0,
	heard_epoch  text,                   -- the epoch it has re-reported its history in
	first_seen_ms bigint NOT NULL,
	last_seen_ms bigint NOT NULL,
	want         bigint NOT NULL DEFAULT 0,
	want_ms      bigint NOT NULL DEFAULT 0,
	outstanding  bigint NOT NULL DEFAULT 0,  -- single-lane units it held after its last request
	requests     bigint NOT NULL DEFAULT 0,
	-- the answer to `seq`, returned again when the request is retried
	r_status     text,
	r_epoch      text,
	r_now_ms     bigint,
	r_lease      bigint, r_lease_n bigint, r_lease_k bigint, r_lease_ms bigint,
	r_reserve    bigint, r_reserve_n bigint, r_reserve_k bigint, r_reserve_ms bigint,
	r_permit     bigint, r_permit_n integer, r_permit_k bigint, r_permit_ms bigint,
	PRIMARY KEY (account, host)
) WITH (fillfactor = 50);  -- each host's row is updated by each of its requests

-- Each host's calls per bucket, as reported (for `pobox fleet status`).
CREATE TABLE pobox_fleet.host_use (
	account text NOT NULL,
	host    text NOT NULL,
	lane    text NOT NULL,
	k       bigint NOT NULL,
	n       bigint NOT NULL,
	PRIMARY KEY (account, host, lane, k)
);

CREATE FUNCTION pobox_fleet.now_ms() RETURNS bigint
LANGUAGE sql VOLATILE AS $$
	-- rounded up: a grant's time is never before the moment it was made
	SELECT ceil(extract(epoch FROM clock_timestamp()) * 1000)::bigint
$$;

CREATE FUNCTION pobox_fleet.bucket_end(t bigint, width bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
	SELECT ((t + width - 1) / width) * width
$$;

CREATE FUNCTION pobox_fleet.add_charge(p_account text, p_lane text, p_k bigint, p_n bigint)
RETURNS void LANGUAGE sql AS $$
	INSERT INTO pobox_fleet.charges (account, lane, k, n) VALUES (p_account, p_lane, p_k, p_n)
	ON CONFLICT (account, lane, k) DO UPDATE SET n = pobox_fleet.charges.n + excluded.n
$$;

-- join: a host's first call.  Creates the account from the host's settings
-- when there is none; refuses a host whose budgets differ from the
-- account's (SQLSTATE PBX01).  Returns the account's settings.
CREATE FUNCTION pobox_fleet.join(
	p_account text, p_host text, p_budget bigint, p_bulk_limit integer,
	p_margin_share double precision, p_window_ms bigint, p_bulk_window_ms bigint,
	p_lease_ms bigint, p_reserve_ms bigint, p_permit_ms bigint,
	p_reserve_share double precision, p_urgent_share double precision, p_fleet_size integer)
RETURNS TABLE (schema_version integer, epoch text, serial bigint, now_ms bigint,
               budget bigint, margin bigint, window_ms bigint, bucket_ms bigint,
               bulk_limit integer, bulk_window_ms bigint, bulk_bucket_ms bigint,
               lease_ms bigint, reserve_ms bigint, permit_ms bigint,
               reserve_share double precision, urgent_share double precision, fleet_size integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pobox_fleet, pg_temp AS $$
#variable_conflict use_column
DECLARE
	a accounts%ROWTYPE;
	t bigint := pobox_fleet.now_ms();
BEGIN
	SELECT * INTO a FROM accounts WHERE account = p_account;
	IF NOT FOUND THEN
		INSERT INTO accounts (account, budget, margin, window_ms, bucket_ms, bulk_limit,
		                      bulk_window_ms, bulk_bucket_ms, lease_ms, reserve_ms, permit_ms,
		                      reserve_share, urgent_share, fleet_size, epoch, epoch_began_ms)
		VALUES (p_account, p_budget, ceil(p_budget * p_margin_share)::bigint, p_window_ms,
		        greatest(p_window_ms / 1440, 1), p_bulk_limit, p_bulk_window_ms,
		        greatest(p_bulk_window_ms / 60, 1), p_lease_ms, p_reserve_ms, p_permit_ms,
		        p_reserve_share, p_urgent_share, p_fleet_size, gen_random_uuid()::text, t)
		ON CONFLICT (account) DO NOTHING;
		SELECT * INTO a FROM accounts WHERE account = p_account;
	END IF;
	IF a.budget <> p_budget OR a.bulk_limit <> p_bulk_limit THEN
		RAISE EXCEPTION USING ERRCODE = 'PBX01',
			MESSAGE = format('account %L has single_budget = %s and bulk_calls_per_minute = %s '
			                 'at the coordinator, but host %L is configured with %s and %s',
			                 p_account, a.budget, a.bulk_limit, p_host, p_budget, p_bulk_limit),
			HINT = 'give every host of the account the same single_budget and '
			       'bulk_calls_per_minute, or change the account with pobox fleet init --update';
	END IF;
	RETURN QUERY SELECT (SELECT max(v.version) FROM schema_version v)::integer, a.epoch, a.serial, t,
		a.budget, a.margin, a.window_ms, a.bucket_ms, a.bulk_limit, a.bulk_window_ms,
		a.bulk_bucket_ms, a.lease_ms, a.reserve_ms, a.permit_ms, a.reserve_share,
		a.urgent_share, a.fleet_size;
END
$$;

-- close_lease: applies a host's report for one of its grants (see the
-- header): the charge goes, the calls made are charged where they were
-- seen.  A lease already closed (or never known) is a no-op.
CREATE FUNCTION pobox_fleet.close_lease(p_account text, p_host text, p_id bigint,
                                        p_use_lease bigint[], p_use_k bigint[], p_use_n bigint[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	l pobox_fleet.leases%ROWTYPE;
	w bigint;
	kk bigint;
BEGIN
	SELECT * INTO l FROM pobox_fleet.leases WHERE id = p_id AND account = p_account
	                                          AND host = p_host FOR UPDATE;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	SELECT CASE l.lane WHEN 'single' THEN a.bucket_ms ELSE a.bulk_bucket_ms END INTO w
	FROM pobox_fleet.accounts a WHERE a.account = p_account;
	UPDATE pobox_fleet.charges SET n = n - l.granted
	WHERE account = p_account AND lane = l.lane AND k = l.k;
	FOR i IN 1 .. coalesce(array_length(p_use_lease, 1), 0) LOOP
		CONTINUE WHEN p_use_lease[i] <> p_id OR p_use_n[i] <= 0;
		kk := least(greatest(pobox_fleet.bucket_end(p_use_k[i], w), l.granted_ms), l.k);
		PERFORM pobox_fleet.add_charge(p_account, l.lane, kk, p_use_n[i]);
		INSERT INTO pobox_fleet.host_use (account, host, lane, k, n)
		VALUES (p_account, p_host, l.lane, kk, p_use_n[i])
		ON CONFLICT (account, host, lane, k) DO UPDATE SET n = pobox_fleet.host_use.n + excluded.n;
	END LOOP;
	DELETE FROM pobox_fleet.leases WHERE id = p_id;
END
$$;

-- fair_share: max-min fairness (Doorman's FAIR_SHARE) over what the hosts
-- asked for lately and did not get: wants below the level are met in
-- full, the level splits the rest evenly among the larger ones.
CREATE FUNCTION pobox_fleet.fair_share(p_account text, p_host text, p_want bigint, p_cap bigint,
                                       p_since bigint)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
	ws bigint[];
	n integer;
	left_ bigint := p_cap;
BEGIN
	SELECT array_agg(w ORDER BY w) INTO ws FROM (
		SELECT x.want - coalesce(x.r_lease_n, 0) AS w FROM pobox_fleet.hosts x
		WHERE x.account = p_account AND x.host <> p_host AND x.want_ms > p_since
		  AND x.want > coalesce(x.r_lease_n, 0)
		UNION ALL SELECT p_want) v;
	n := array_length(ws, 1);
	FOR i IN 1 .. n LOOP
		IF ws[i] * (n - i + 1) >= left_ THEN
			RETURN ceil(left_::numeric / (n - i + 1))::bigint;
		END IF;
		left_ := left_ - ws[i];
	END LOOP;
	RETURN p_want;  -- every want fits
END
$$;

-- spent: the charges of a lane that count at time t.
CREATE FUNCTION pobox_fleet.spent(p_account text, p_lane text, p_since bigint) RETURNS bigint
LANGUAGE sql STABLE AS $$
	SELECT coalesce(sum(n), 0)::bigint FROM pobox_fleet.charges
	WHERE account = p_account AND lane = p_lane AND k > p_since
$$;

-- grant: one round trip of a host.  In order: reports (p_close with the
-- use of each closed grant per bucket), then the request itself: a lease of
-- up to p_want single calls, a new standing reserve (p_reserve) or a longer
-- life for the unused one it holds (p_extend), up to p_permits bulk permits.
-- Extending needs no free capacity: moving a charge later only keeps
-- counted, in later windows, calls every window from now on already
-- counts, so no window can hold more than the one ending now.  p_horizon_ms / p_bulk_horizon_ms: how long after
-- starting a call the host may still be sending it (its timeouts).
-- p_hist_*: the host's calls of the last window, sent once per epoch.
CREATE FUNCTION pobox_fleet.grant(
	p_account text, p_host text, p_incarnation text, p_seq bigint,
	p_epoch text, p_serial bigint,
	p_want bigint, p_urgent boolean, p_reserve boolean, p_extend bigint, p_permits integer,
	p_horizon_ms bigint, p_bulk_horizon_ms bigint,
	p_close bigint[], p_use_lease bigint[], p_use_k bigint[], p_use_n bigint[],
	p_hist_lane text[], p_hist_k bigint[], p_hist_n bigint[])
RETURNS TABLE (status text, epoch text, serial bigint, now_ms bigint, grant_ms bigint, next_seq bigint,
               lease bigint, lease_n bigint, lease_k bigint, lease_ms bigint,
               reserve bigint, reserve_n bigint, reserve_k bigint, reserve_ms bigint,
               permit bigint, permit_n integer, permit_k bigint, permit_ms bigint,
               spent bigint, free bigint, refill bigint, active integer, single_free_ms bigint,
               bulk_used bigint, bulk_free_ms bigint, learning boolean, hosts integer,
               closed bigint[])
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pobox_fleet, pg_temp AS $$
#variable_conflict use_column
DECLARE
	a accounts%ROWTYPE;
	h hosts%ROWTYPE;
	t bigint := pobox_fleet.now_ms();
	v_status text := 'ok';
	v_spent bigint; v_hold bigint := 0; v_pool bigint; v_cap bigint; v_active integer;
	v_g bigint := 0; v_r bigint := 0; v_np integer := 0;
	v_lease bigint; v_lease_k bigint; v_res bigint; v_res_k bigint; v_per bigint; v_per_k bigint;
	v_bulk bigint := 0; v_bulk_free bigint;
	v_learn boolean := false; v_hosts integer; v_total bigint; v_others bigint; v_size bigint;
	v_refill bigint; v_single_free bigint; l leases%ROWTYPE;
BEGIN
	-- one request of the account at a time: an advisory lock queues its
	-- waiters in order, where a row lock (FOR UPDATE) would wake every one
	-- of them at each commit - with hundreds of hosts, most of the work
	PERFORM pg_advisory_xact_lock(hashtextextended('pobox_fleet ' || p_account, 0));
	SELECT * INTO a FROM accounts WHERE account = p_account;
	IF NOT FOUND THEN
		RAISE EXCEPTION USING ERRCODE = 'PBX02',
			MESSAGE = format('no fleet account %L at the coordinator', p_account),
			HINT = 'run pobox fleet init, or let a host join first';
	END IF;
	INSERT INTO hosts (account, host, incarnation, first_seen_ms, last_seen_ms)
	VALUES (p_account, p_host, p_incarnation, t, t) ON CONFLICT DO NOTHING;
	SELECT * INTO h FROM hosts WHERE account = p_account AND host = p_host FOR UPDATE;
	IF h.incarnation <> p_incarnation THEN
		-- a new outbox under an old name: its sequence restarts, and so does
		-- what it has told us; its old grants stay charged until they expire
		h.incarnation := p_incarnation; h.seq := 0; h.heard_epoch := NULL; h.r_status := NULL;
	END IF;
	-- the ledger went back in time: a new epoch
	IF p_epoch = a.epoch AND p_serial > a.serial THEN
		a.epoch := gen_random_uuid()::text;
		a.epoch_began_ms := t;
		RAISE WARNING 'pobox fleet %: host % has seen serial % but the ledger is at %: new epoch %',
			p_account, p_host, p_serial, a.serial, a.epoch;
	END IF;
	a.serial := a.serial + 1;
	FOR i IN 1 .. coalesce(array_length(p_close, 1), 0) LOOP
		PERFORM pobox_fleet.close_lease(p_account, p_host, p_close[i], p_use_lease, p_use_k, p_use_n);
	END LOOP;

	IF p_seq <= h.seq THEN
		IF p_seq = h.seq AND h.r_epoch = a.epoch THEN
			v_status := 'replay';
		ELSE
			v_status := 'stale';
		END IF;
	ELSIF p_epoch IS DISTINCT FROM a.epoch THEN
		v_status := 'epoch';
	ELSIF h.heard_epoch IS DISTINCT FROM a.epoch THEN
		IF p_hist_k IS NULL THEN
			v_status := 'epoch';
		ELSE
			FOR i IN 1 .. coalesce(array_length(p_hist_k, 1), 0) LOOP
				CONTINUE WHEN p_hist_n[i] <= 0 OR p_hist_lane[i] NOT IN ('single', 'bulk');
				PERFORM pobox_fleet.add_charge(p_account, p_hist_lane[i], p_hist_k[i], p_hist_n[i]);
				INSERT INTO host_use (account, host, lane, k, n)
				VALUES (p_account, p_host, p_hist_lane[i], p_hist_k[i], p_hist_n[i])
				ON CONFLICT (account, host, lane, k) DO UPDATE SET n = host_use.n + excluded.n;
			END LOOP;
			h.heard_epoch := a.epoch;
		END IF;
	END IF;

	v_hosts := (SELECT count(*) FROM hosts x WHERE x.account = p_account
	            AND x.last_seen_ms > t - a.window_ms)::integer;
	v_spent := pobox_fleet.spent(p_account, 'single', t - a.window_ms);
	IF t < a.epoch_began_ms + a.window_ms + a.reserve_ms THEN
		-- learning: what unheard hosts held may still be spent
		SELECT coalesce(sum(x.outstanding), 0), count(*) > 0 INTO v_hold, v_learn
		FROM hosts x WHERE x.account = p_account AND x.host <> p_host
		  AND x.heard_epoch IS DISTINCT FROM a.epoch AND x.last_seen_ms > t - a.window_ms;
	END IF;
	v_pool := a.budget - a.margin - v_spent - v_hold;
	-- what leaves the window within a lease's life: soon free again
	v_refill := v_spent - pobox_fleet.spent(p_account, 'single', t - a.window_ms + a.lease_ms);
	v_active := 1 + (SELECT count(*) FROM hosts x WHERE x.account = p_account
	                 AND x.host <> p_host AND x.want > 0 AND x.want_ms > t - 2 * a.lease_ms);

	IF v_status = 'ok' THEN
		-- the lease: the caller's want, within what is free (less the urgent
		-- share unless it has urgent work) and its fair share of it
		IF p_want > 0 THEN
			v_cap := v_pool - CASE WHEN p_urgent THEN 0
			                       ELSE floor(a.urgent_share * (a.budget - a.margin))::bigint END;
			v_g := greatest(least(p_want, v_cap, pobox_fleet.fair_share(p_account, p_host, p_want,
			                                                             greatest(v_cap, 0), t - 2 * a.lease_ms)), 0);
			h.want := p_want;
			h.want_ms := t;
		ELSE
			h.want := 0;
		END IF;
		IF v_g > 0 THEN
			v_lease_k := pobox_fleet.bucket_end(t + a.lease_ms + p_horizon_ms, a.bucket_ms);
			INSERT INTO leases (account, host, lane, kind, granted, k, granted_ms, epoch)
			VALUES (p_account, p_host, 'single', 'lease', v_g, v_lease_k, t, a.epoch)
			RETURNING id INTO v_lease;
			PERFORM pobox_fleet.add_charge(p_account, 'single', v_lease_k, v_g);
		END IF;
		-- the standing reserve: an equal part of reserve_share of the budget
		-- per host, never more than that share in all
		IF p_extend IS NOT NULL THEN
			SELECT * INTO l FROM leases WHERE id = p_extend AND account = p_account AND host = p_host
			                              AND kind = 'reserve' FOR UPDATE;
			IF FOUND THEN
				v_res_k := greatest(l.k, pobox_fleet.bucket_end(t + a.reserve_ms + p_horizon_ms, a.bucket_ms));
				UPDATE charges SET n = n - l.granted WHERE account = p_account AND lane = 'single' AND k = l.k;
				PERFORM pobox_fleet.add_charge(p_account, 'single', v_res_k, l.granted);
				UPDATE leases SET k = v_res_k, granted_ms = t WHERE id = l.id;
				v_res := l.id;
				v_r := l.granted;
			END IF;
		ELSIF p_reserve THEN
			v_total := floor(a.reserve_share * (a.budget - a.margin))::bigint;
			SELECT coalesce(sum(granted), 0) INTO v_others FROM leases
			WHERE account = p_account AND kind = 'reserve' AND host <> p_host AND k > t - a.window_ms;
			v_size := v_total / greatest(a.fleet_size, v_hosts, 1);
			v_r := greatest(least(v_size, v_total - v_others, v_pool - v_g), 0);
			IF v_r > 0 THEN
				v_res_k := pobox_fleet.bucket_end(t + a.reserve_ms + p_horizon_ms, a.bucket_ms);
				INSERT INTO leases (account, host, lane, kind, granted, k, granted_ms, epoch)
				VALUES (p_account, p_host, 'single', 'reserve', v_r, v_res_k, t, a.epoch)
				RETURNING id INTO v_res;
				PERFORM pobox_fleet.add_charge(p_account, 'single', v_res_k, v_r);
			END IF;
		END IF;
		-- bulk permits, against the account's per-window bulk limit
		IF p_permits > 0 THEN
			v_bulk := pobox_fleet.spent(p_account, 'bulk', t - a.bulk_window_ms);
			v_np := greatest(least(p_permits::bigint, a.bulk_limit - v_bulk), 0)::integer;
			IF v_np > 0 THEN
				v_per_k := pobox_fleet.bucket_end(t + a.permit_ms + p_bulk_horizon_ms, a.bulk_bucket_ms);
				INSERT INTO leases (account, host, lane, kind, granted, k, granted_ms, epoch)
				VALUES (p_account, p_host, 'bulk', 'permit', v_np, v_per_k, t, a.epoch)
				RETURNING id INTO v_per;
				PERFORM pobox_fleet.add_charge(p_account, 'bulk', v_per_k, v_np);
				v_bulk := v_bulk + v_np;
			END IF;
		END IF;
	END IF;
	IF p_want > v_g THEN
		-- when the oldest single charge leaves the window: ask again then
		SELECT min(c.k) + a.window_ms INTO v_single_free FROM charges c
		WHERE c.account = p_account AND c.lane = 'single' AND c.k > t - a.window_ms AND c.n > 0;
	END IF;
	IF p_permits > 0 AND v_np = 0 THEN
		-- when the oldest bulk charge leaves the window
		SELECT min(c.k) + a.bulk_window_ms INTO v_bulk_free FROM charges c
		WHERE c.account = p_account AND c.lane = 'bulk' AND c.k > t - a.bulk_window_ms AND c.n > 0;
		v_bulk := pobox_fleet.spent(p_account, 'bulk', t - a.bulk_window_ms);
	END IF;

	IF v_status IN ('ok', 'epoch') THEN
		h.seq := p_seq;
		h.r_status := v_status; h.r_epoch := a.epoch; h.r_now_ms := t;
		h.r_lease := v_lease; h.r_lease_n := v_g; h.r_lease_k := v_lease_k; h.r_lease_ms := a.lease_ms;
		h.r_reserve := v_res; h.r_reserve_n := v_r; h.r_reserve_k := v_res_k;
		h.r_reserve_ms := a.reserve_ms;
		h.r_permit := v_per; h.r_permit_n := v_np; h.r_permit_k := v_per_k; h.r_permit_ms := a.permit_ms;
	END IF;
	h.last_seen_ms := t;
	h.requests := h.requests + 1;
	h.outstanding := (SELECT coalesce(sum(granted), 0) FROM leases
	                  WHERE account = p_account AND host = p_host AND lane = 'single');
	UPDATE hosts SET incarnation = h.incarnation, seq = h.seq, heard_epoch = h.heard_epoch,
		last_seen_ms = h.last_seen_ms, want = h.want, want_ms = h.want_ms,
		outstanding = h.outstanding, requests = h.requests,
		r_status = h.r_status, r_epoch = h.r_epoch, r_now_ms = h.r_now_ms,
		r_lease = h.r_lease, r_lease_n = h.r_lease_n, r_lease_k = h.r_lease_k, r_lease_ms = h.r_lease_ms,
		r_reserve = h.r_reserve, r_reserve_n = h.r_reserve_n, r_reserve_k = h.r_reserve_k,
		r_reserve_ms = h.r_reserve_ms, r_permit = h.r_permit, r_permit_n = h.r_permit_n,
		r_permit_k = h.r_permit_k, r_permit_ms = h.r_permit_ms
	WHERE account = p_account AND host = p_host;
	UPDATE accounts SET epoch = a.epoch, epoch_began_ms = a.epoch_began_ms, serial = a.serial
	WHERE account = p_account;

	-- housekeeping, bounded by what expired since the last request
	DELETE FROM charges c WHERE c.account = p_account AND c.lane = 'single' AND c.k <= t - a.window_ms;
	DELETE FROM charges c WHERE c.account = p_account AND c.lane = 'bulk' AND c.k <= t - a.bulk_window_ms;
	DELETE FROM leases l WHERE l.account = p_account AND l.k <= t - greatest(a.window_ms, a.bulk_window_ms);
	-- each host prunes its own rows (the primary key's order): a scan of
	-- every host's would cost the whole fleet on every request
	DELETE FROM host_use u WHERE u.account = p_account AND u.host = p_host AND u.k <= t - a.window_ms;

	IF v_status = 'replay' THEN
		RETURN QUERY SELECT 'replay'::text, a.epoch, a.serial, t, h.r_now_ms, h.seq + 1,
			h.r_lease, h.r_lease_n, h.r_lease_k, h.r_lease_ms,
			h.r_reserve, h.r_reserve_n, h.r_reserve_k, h.r_reserve_ms,
			h.r_permit, h.r_permit_n, h.r_permit_k, h.r_permit_ms,
			v_spent, v_pool, v_refill, v_active, v_single_free, v_bulk, v_bulk_free, v_learn,
			v_hosts, p_close;
	ELSE
		RETURN QUERY SELECT v_status, a.epoch, a.serial, t, t, h.seq + 1,
			v_lease, v_g, v_lease_k, a.lease_ms, v_res, v_r, v_res_k, a.reserve_ms,
			v_per, v_np, v_per_k, a.permit_ms,
			v_spent + v_g + CASE WHEN p_extend IS NULL THEN v_r ELSE 0 END,
			v_pool - v_g - CASE WHEN p_extend IS NULL THEN v_r ELSE 0 END, v_refill, v_active, v_single_free, v_bulk,
			v_bulk_free, v_learn, v_hosts, p_close;
	END IF;
END
$$;

-- account_status: the account as the coordinator sees it now.
CREATE FUNCTION pobox_fleet.account_status(p_account text)
RETURNS TABLE (schema_version integer, epoch text, serial bigint, now_ms bigint, budget bigint,
               margin bigint, window_ms bigint, spent bigint, bulk_limit integer,
               bulk_window_ms bigint, bulk_used bigint, reserves bigint, hosts integer,
               learning boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pobox_fleet, pg_temp AS $$
#variable_conflict use_column
DECLARE
	a accounts%ROWTYPE;
	t bigint := pobox_fleet.now_ms();
BEGIN
	SELECT * INTO a FROM accounts WHERE account = p_account;
	IF NOT FOUND THEN
		RAISE EXCEPTION USING ERRCODE = 'PBX02',
			MESSAGE = format('no fleet account %L at the coordinator', p_account);
	END IF;
	RETURN QUERY SELECT (SELECT max(v.version) FROM schema_version v)::integer, a.epoch, a.serial, t,
		a.budget, a.margin, a.window_ms, pobox_fleet.spent(p_account, 'single', t - a.window_ms),
		a.bulk_limit, a.bulk_window_ms, pobox_fleet.spent(p_account, 'bulk', t - a.bulk_window_ms),
		(SELECT coalesce(sum(l.granted), 0) FROM leases l WHERE l.account = p_account
		   AND l.kind = 'reserve')::bigint,
		(SELECT count(*) FROM hosts x WHERE x.account = p_account
		   AND x.last_seen_ms > t - a.window_ms)::integer,
		t < a.epoch_began_ms + a.window_ms + a.reserve_ms AND EXISTS (
			SELECT 1 FROM hosts x WHERE x.account = p_account
			AND x.heard_epoch IS DISTINCT FROM a.epoch AND x.last_seen_ms > t - a.window_ms);
END
$$;

-- host_status: every host of the account, the most recently seen first.
CREATE FUNCTION pobox_fleet.host_status(p_account text)
RETURNS TABLE (host text, used bigint, leased bigint, reserve bigint, permits bigint,
               last_seen_ms bigint, age_ms bigint, heard boolean, requests bigint, want bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pobox_fleet, pg_temp AS $$
	WITH a AS (SELECT * FROM accounts WHERE account = p_account),
	     t AS (SELECT pobox_fleet.now_ms() AS now)
	SELECT x.host,
	       (SELECT coalesce(sum(u.n), 0) FROM host_use u, a WHERE u.account = p_account
	          AND u.host = x.host AND u.lane = 'single' AND u.k > t.now - a.window_ms)::bigint,
	       (SELECT coalesce(sum(l.granted), 0) FROM leases l WHERE l.account = p_account
	          AND l.host = x.host AND l.kind = 'lease')::bigint,
	       (SELECT coalesce(sum(l.granted), 0) FROM leases l WHERE l.account = p_account
	          AND l.host = x.host AND l.kind = 'reserve')::bigint,
	       (SELECT coalesce(sum(l.granted), 0) FROM leases l WHERE l.account = p_account
	          AND l.host = x.host AND l.kind = 'permit')::bigint,
	       x.last_seen_ms, t.now - x.last_seen_ms, x.heard_epoch IS NOT DISTINCT FROM a.epoch,
	       x.requests, x.want
	FROM hosts x, a, t WHERE x.account = p_account
	ORDER BY x.last_seen_ms DESC, x.host
$$;

-- Only the schema's owner and the roles given EXECUTE (pobox fleet init
-- --grant ROLE) may call anything here.
REVOKE ALL ON FUNCTION pobox_fleet.now_ms() FROM PUBLIC;
REVOKE ALL ON FUNCTION pobox_fleet.bucket_end(bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION pobox_fleet.add_charge(text, text, bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION pobox_fleet.spent(text, text, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION pobox_fleet.fair_share(text, text, bigint, bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION pobox_fleet.close_lease(text, text, bigint, bigint[], bigint[], bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pobox_fleet.join(text, text, bigint, integer, double precision, bigint, bigint,
                                        bigint, bigint, bigint, double precision, double precision,
                                        integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION pobox_fleet.grant(text, text, text, bigint, text, bigint, bigint, boolean,
                                         boolean, bigint, integer, bigint, bigint, bigint[], bigint[],
                                         bigint[], bigint[], text[], bigint[], bigint[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION pobox_fleet.account_status(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION pobox_fleet.host_status(text) FROM PUBLIC;
