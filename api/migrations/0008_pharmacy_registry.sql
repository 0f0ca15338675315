-- Pharmacy registry (issue 5): what a pharmacy is (identifiers, where, when it is open), API keys for pharmacy
-- software, and the stock pharmacies publish so patients can find one that has their prescription.

-- ------------------------------------------------------------------------------------------------ opening hours

-- Opening hours travel as [{weekday 1 = Monday .. 7 = Sunday, opens "HH:MM", closes "HH:MM"}] in Vietnam local time.
-- closes <= opens means the span ends the next day ("18:00"-"02:00"); opens = closes is 24 hours; "24:00" is midnight.
CREATE FUNCTION hhmm_minutes(hhmm text) RETURNS integer
  LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  RETURN split_part(hhmm, ':', 1)::integer * 60 + split_part(hhmm, ':', 2)::integer;

CREATE FUNCTION opening_hours_valid(hours jsonb) RETURNS boolean
  LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  RETURN CASE WHEN jsonb_typeof(hours) <> 'array' OR jsonb_array_length(hours) > 28 THEN false ELSE (
    SELECT coalesce(bool_and(coalesce(
             jsonb_typeof(e) = 'object' AND e ->> 'weekday' ~ '^[1-7]$'
             AND e ->> 'opens' ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$'
             AND e ->> 'closes' ~ '^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$', false)), true)
    FROM jsonb_array_elements(hours) AS e) END;

-- The hours as minutes of the (Monday-first) week, so "open now?" is one containment test per pharmacy on the search
-- path instead of a walk over the JSON. A span running past Sunday midnight wraps round to Monday morning.
CREATE FUNCTION opening_week_minutes(hours jsonb) RETURNS int4multirange
  LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  RETURN (
    WITH spans AS (
      SELECT (e ->> 'weekday')::integer * 1440 - 1440 + hhmm_minutes(e ->> 'opens') AS starts,
             (e ->> 'weekday')::integer * 1440 - 1440 + hhmm_minutes(e ->> 'closes')
               + CASE WHEN hhmm_minutes(e ->> 'closes') <= hhmm_minutes(e ->> 'opens') THEN 1440 ELSE 0 END AS ends
      FROM jsonb_array_elements(hours) AS e
    )
    SELECT coalesce(range_agg(part), '{}'::int4multirange)
    FROM (SELECT int4range(starts, least(ends, 10080)) AS part FROM spans
          UNION ALL
          SELECT int4range(0, ends - 10080) FROM spans WHERE ends > 10080) AS parts);

-- ------------------------------------------------------------------------------------------------ the registry

ALTER TABLE pharmacies
  -- PH-11 / §9 U-9: the formats of these national identifiers are unknown, so they are opaque strings
  ADD COLUMN gpp_certificate_number  text UNIQUE CHECK (length(gpp_certificate_number) BETWEEN 1 AND 100),
  -- API-7 ma_dinh_danh_co_so_cung_ung_thuoc (<= 200 characters)
  ADD COLUMN national_outlet_id      text UNIQUE CHECK (length(national_outlet_id) BETWEEN 1 AND 200),
  -- API-7 so_dien_thoai_co_so_cung_ung_thuoc: at most 12 digits, domestic form (028..., 09..., 1800...)
  ADD COLUMN phone                   text CHECK (phone ~ '^[0-9]{8,12}$'),
  ADD COLUMN province                text NOT NULL DEFAULT '' CHECK (length(province) <= 100),
  ADD COLUMN latitude                double precision CHECK (latitude BETWEEN -90 AND 90),
  ADD COLUMN longitude               double precision CHECK (longitude BETWEEN -180 AND 180),
  -- the point on earthdistance's sphere, stored: computing ll_to_earth (and its domain checks) per candidate
  -- dominated the radius search
  ADD COLUMN location                earth GENERATED ALWAYS AS (ll_to_earth(latitude, longitude)) STORED,
  ADD COLUMN opening_hours           jsonb NOT NULL DEFAULT '[]' CHECK (opening_hours_valid(opening_hours)),
  ADD COLUMN open_week_minutes       int4multirange NOT NULL
                                       GENERATED ALWAYS AS (opening_week_minutes(opening_hours)) STORED,
  -- a deactivated pharmacy (GPP withdrawn, closed down) keeps its history but is no longer found or served
  ADD COLUMN active                  boolean NOT NULL DEFAULT true,
  ADD COLUMN updated_at              timestamptz NOT NULL DEFAULT now(),
  ADD CONSTRAINT address_length CHECK (length(address) <= 500),
  ADD CONSTRAINT located_in_full CHECK ((latitude IS NULL) = (longitude IS NULL));

-- Radius search prefilter: earth_box(origin, r) @> location, then the exact distance.
CREATE INDEX pharmacies_location ON pharmacies USING gist (location) WHERE active AND location IS NOT NULL;

-- ------------------------------------------------------------------------------------------------ API keys

-- Pharmacy software signs in with an API key and receives a short-lived pharmacist access token. The key is stored
-- only as an HMAC; the prefix (its public part) is what people see in lists and logs. Each key chain (a key and its
-- rotations) acts as one service account: role pharmacist, an unusable password, never a pharmacist degree (PH-4).
CREATE TABLE pharmacy_api_keys (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  pharmacy_id   uuid NOT NULL REFERENCES pharmacies (id),
  account_id    uuid NOT NULL REFERENCES accounts (id),
  label         text NOT NULL CHECK (length(label) BETWEEN 1 AND 100),
  prefix        text NOT NULL UNIQUE CHECK (prefix ~ '^ltpk_[A-Za-z0-9]{8}$'),
  secret_hash   bytea NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
  created_at    timestamptz NOT NULL DEFAULT now(),
  created_by    uuid REFERENCES accounts (id),
  last_used_at  timestamptz,
  -- when the key stops being accepted: now for a revocation, a short overlap ahead for a rotation
  revoked_at    timestamptz,
  revoked_by    uuid REFERENCES accounts (id),
  replaced_by   uuid REFERENCES pharmacy_api_keys (id)
);
CREATE INDEX pharmacy_api_keys_pharmacy ON pharmacy_api_keys (pharmacy_id, created_at DESC);
CREATE INDEX pharmacy_api_keys_account ON pharmacy_api_keys (account_id);

-- PH-4: only a person holding a pharmacist degree may substitute; software never does, whoever edits the rows.
CREATE FUNCTION machine_accounts_hold_no_degree() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT FROM pharmacists p JOIN pharmacy_api_keys k ON k.account_id = p.account_id
             WHERE p.account_id = NEW.account_id AND p.has_pharmacist_degree) THEN
    RAISE EXCEPTION 'account % belongs to pharmacy software; it cannot hold a pharmacist degree', NEW.account_id
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE CONSTRAINT TRIGGER pharmacists_machine_no_degree AFTER INSERT OR UPDATE ON pharmacists
  FOR EACH ROW EXECUTE FUNCTION machine_accounts_hold_no_degree();
CREATE CONSTRAINT TRIGGER pharmacy_api_keys_machine_no_degree AFTER INSERT OR UPDATE ON pharmacy_api_keys
  FOR EACH ROW EXECUTE FUNCTION machine_accounts_hold_no_degree();

-- Failed key exchanges are counted per client address from the audit log; this keeps the count off the big table.
CREATE INDEX audit_log_api_key_failures ON audit_log (client_ip, at)
  WHERE action = 'pharmacy_api_key.exchange_failed';

-- ------------------------------------------------------------------------------------------------ stock

-- What a pharmacy says it has, per catalogue drug, in the drug's dispensing unit. Informational: dispensing
-- decrements it (never below zero) but a sale is never refused because of it. Searches read only "enough or not".
CREATE TABLE pharmacy_stock (
  pharmacy_id  uuid NOT NULL REFERENCES pharmacies (id),
  drug_id      uuid NOT NULL REFERENCES drugs (id),
  quantity     integer NOT NULL CHECK (quantity >= 0),
  -- the unit the pharmacy software counts in, as it names it; shown back, never converted
  unit         text NOT NULL DEFAULT '' CHECK (length(unit) <= 30),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pharmacy_id, drug_id)
);
-- The nearby search reads stock from the drug side, for the pharmacies around a point, without touching the table.
CREATE INDEX pharmacy_stock_by_drug ON pharmacy_stock (drug_id, pharmacy_id) INCLUDE (quantity);
