-- Foundation: extensions later issues need, places of care, accounts and sign-in, patients, consents, audit log.

CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS cube;
CREATE EXTENSION IF NOT EXISTS earthdistance;

-- unaccent() is only STABLE; this wrapper pins the dictionary so it can be used in indexes.
CREATE FUNCTION immutable_unaccent(text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  RETURN public.unaccent('public.unaccent'::regdictionary, $1);

-- Lower-cased, diacritic-free text for search (đ/Đ are letters of their own, not accented d).
CREATE FUNCTION search_fold(text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  RETURN lower(translate(immutable_unaccent($1), 'đĐ', 'dD'));

CREATE TABLE facilities (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- VN-3.2: the 5-character health-insurance (BHYT) facility code that prefixes prescription codes
  code        text NOT NULL UNIQUE CHECK (code ~ '^[0-9A-Za-z]{5}$'),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
  address     text NOT NULL DEFAULT '',
  province    text NOT NULL DEFAULT '',
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE pharmacies (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 300),
  kind        text NOT NULL CHECK (kind IN ('nha_thuoc', 'quay_thuoc')),
  address     text NOT NULL DEFAULT '',
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  role                text NOT NULL CHECK (role IN ('patient', 'doctor', 'pharmacist', 'admin')),
  phone               text UNIQUE CHECK (phone ~ '^\+[1-9][0-9]{7,14}$'),
  username            citext UNIQUE CHECK (length(username) BETWEEN 3 AND 64),
  password_hash       text,
  -- AES-GCM ciphertext (nonce || ct) of the TOTP secret; the key is LIENTHONG_DATA_KEY, never in the database
  totp_secret_enc     bytea,
  totp_pending_enc    bytea,
  totp_confirmed_at   timestamptz,
  totp_last_step      bigint NOT NULL DEFAULT 0,
  full_name           text NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
  status              text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  failed_logins       integer NOT NULL DEFAULT 0,
  locked_until        timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  -- patients sign in by phone + SMS OTP; staff by username + password + TOTP
  CONSTRAINT patient_has_phone CHECK (role <> 'patient' OR phone IS NOT NULL),
  CONSTRAINT staff_has_password CHECK (role = 'patient' OR (username IS NOT NULL AND password_hash IS NOT NULL))
);

CREATE TABLE doctors (
  account_id      uuid PRIMARY KEY REFERENCES accounts (id),
  facility_id     uuid NOT NULL REFERENCES facilities (id),
  title           text NOT NULL DEFAULT '' CHECK (length(title) <= 50),
  licence_number  text NOT NULL UNIQUE CHECK (length(licence_number) BETWEEN 3 AND 50)
);
CREATE INDEX doctors_facility ON doctors (facility_id);

CREATE TABLE pharmacists (
  account_id             uuid PRIMARY KEY REFERENCES accounts (id),
  pharmacy_id            uuid NOT NULL REFERENCES pharmacies (id),
  -- PH-4: only holders of a pharmacist degree may substitute drugs
  has_pharmacist_degree  boolean NOT NULL DEFAULT false
);
CREATE INDEX pharmacists_pharmacy ON pharmacists (pharmacy_id);

CREATE TABLE recovery_codes (
  account_id  uuid NOT NULL REFERENCES accounts (id),
  code_hash   bytea NOT NULL,
  used_at     timestamptz,
  PRIMARY KEY (account_id, code_hash)
);

-- A patient is a person whose health data we hold: an account holder, or a dependent (child) without one.
CREATE TABLE patients (
  id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id              uuid UNIQUE REFERENCES accounts (id),
  full_name               text NOT NULL CHECK (length(full_name) BETWEEN 1 AND 200),
  date_of_birth           date CHECK (date_of_birth >= '1900-01-01'),
  sex                     text CHECK (sex IN ('male', 'female', 'other')),
  citizen_id              text UNIQUE CHECK (citizen_id ~ '^[0-9]{12}$'),
  address                 text NOT NULL DEFAULT '' CHECK (length(address) <= 500),
  health_insurance_number text CHECK (health_insurance_number ~ '^[A-Z]{2}[0-9]{13}$|^[0-9]{10}$'),
  allergies               jsonb NOT NULL DEFAULT '[]',
  weight_kg               numeric(5, 2) CHECK (weight_kg > 0 AND weight_kg < 500),
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE guardianships (
  guardian_id    uuid NOT NULL REFERENCES patients (id),
  dependent_id   uuid NOT NULL REFERENCES patients (id),
  relationship   text NOT NULL CHECK (relationship IN ('parent', 'legal_guardian')),
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (guardian_id, dependent_id),
  CHECK (guardian_id <> dependent_id)
);
CREATE INDEX guardianships_dependent ON guardianships (dependent_id);

-- One row per code sent. Only an HMAC of the code is kept; the row also drives resend throttling.
CREATE TABLE otp_challenges (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  phone        text NOT NULL,
  client_ip    inet,
  code_hash    bytea NOT NULL,
  attempts     integer NOT NULL DEFAULT 0,
  expires_at   timestamptz NOT NULL,
  consumed_at  timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX otp_challenges_phone ON otp_challenges (phone, created_at DESC);
CREATE INDEX otp_challenges_ip ON otp_challenges (client_ip, created_at DESC);

-- Refresh tokens rotate on every use; a family is one sign-in. Reusing a rotated token revokes the family.
CREATE TABLE refresh_tokens (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  family_id    uuid NOT NULL,
  account_id   uuid NOT NULL REFERENCES accounts (id),
  token_hash   bytea NOT NULL UNIQUE,
  expires_at   timestamptz NOT NULL,
  rotated_at   timestamptz,
  revoked_at   timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_account ON refresh_tokens (account_id);

CREATE TABLE consent_documents (
  kind          text NOT NULL CHECK (kind IN ('telemedicine_terms', 'data_processing')),
  version       text NOT NULL CHECK (version ~ '^[0-9]{4}-[0-9]{2}(\.[0-9]+)?$'),
  title         text NOT NULL,
  body          text NOT NULL,
  effective_at  timestamptz NOT NULL,
  PRIMARY KEY (kind, version)
);

-- Append-only: a withdrawal is a new row, never an edit (Decree 13/2023 requires proof of consent).
CREATE TABLE consents (
  id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  patient_id     uuid NOT NULL REFERENCES patients (id),
  kind           text NOT NULL,
  version        text NOT NULL,
  granted        boolean NOT NULL,
  recorded_by    uuid NOT NULL REFERENCES accounts (id),
  client_ip      inet,
  user_agent     text,
  recorded_at    timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (kind, version) REFERENCES consent_documents (kind, version)
);
CREATE INDEX consents_patient ON consents (patient_id, kind, recorded_at DESC);

CREATE TABLE audit_log (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at                  timestamptz NOT NULL DEFAULT now(),
  actor_account_id    uuid,
  actor_role          text,
  action              text NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)+$'),
  target_type         text,
  target_id           text,
  subject_patient_id  uuid,
  client_ip           inet,
  user_agent          text,
  request_id          text,
  details             jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_subject ON audit_log (subject_patient_id, at DESC) WHERE subject_patient_id IS NOT NULL;
CREATE INDEX audit_log_actor ON audit_log (actor_account_id, at DESC);

-- Belt and braces with the role grants: nobody, not even the owner's sessions, rewrites history.
CREATE FUNCTION forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION forbid_change();
CREATE TRIGGER consents_append_only BEFORE UPDATE OR DELETE ON consents
  FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER consents_no_truncate BEFORE TRUNCATE ON consents
  FOR EACH STATEMENT EXECUTE FUNCTION forbid_change();

INSERT INTO consent_documents (kind, version, title, body, effective_at) VALUES
  ('telemedicine_terms', '2026-01', 'Điều khoản khám chữa bệnh từ xa',
   'Tôi đồng ý được khám, tư vấn từ xa qua video; bác sĩ có thể từ chối kê đơn khi cần khám trực tiếp. '
   'Thuốc gây nghiện, hướng thần không được kê trong khám từ xa.', '2026-01-01T00:00:00+07'),
  ('data_processing', '2026-01', 'Đồng ý xử lý dữ liệu cá nhân nhạy cảm',
   'Tôi đồng ý cho Lienthong xử lý dữ liệu sức khỏe của tôi (và của con tôi) để khám chữa bệnh, kê đơn và '
   'nhắc lịch, theo Nghị định 13/2023/NĐ-CP.', '2026-01-01T00:00:00+07');
