-- Prescriptions (issue 4): drafts, signed prescriptions and their lines, doctors' signing keys, and the outbox that
-- sends signed prescriptions to the national e-prescription system (QĐ 808, API-5).

-- One Ed25519 key pair per doctor (rotatable). The private key is sealed with LIENTHONG_DATA_KEY (AES-GCM, bound to
-- the key id), never stored in clear; public keys are published so pharmacies can verify signatures offline.
CREATE TABLE doctor_signing_keys (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  doctor_id        uuid NOT NULL REFERENCES doctors (account_id),
  algorithm        text NOT NULL DEFAULT 'Ed25519' CHECK (algorithm = 'Ed25519'),
  public_key       bytea NOT NULL UNIQUE CHECK (length(public_key) = 32),
  private_key_enc  bytea NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  retired_at       timestamptz
);
-- at most one current key per doctor: two first signatures racing create one key, not two
CREATE UNIQUE INDEX doctor_signing_keys_current ON doctor_signing_keys (doctor_id) WHERE retired_at IS NULL;

-- National e-prescription identities (API-R1): the doctor's mã liên thông and password on donthuocquocgia.vn,
-- the password sealed like TOTP secrets.
ALTER TABLE doctors
  ADD COLUMN national_rx_code          text UNIQUE CHECK (length(national_rx_code) BETWEEN 1 AND 50),
  ADD COLUMN national_rx_password_enc  bytea;

CREATE TABLE prescriptions (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  consultation_id      uuid NOT NULL REFERENCES consultations (id),
  patient_id           uuid NOT NULL REFERENCES patients (id),
  doctor_id            uuid NOT NULL REFERENCES doctors (account_id),
  facility_id          uuid NOT NULL REFERENCES facilities (id),
  -- spec §7.3 status model. with_dispenser / partially_dispensed / dispensed / not_dispensed are set by pharmacy_link;
  -- expired is set by the worker once valid_until has passed (reads also treat a past valid_until as expired)
  status               text NOT NULL DEFAULT 'draft' CHECK (status IN (
                         'draft', 'issued', 'with_dispenser', 'partially_dispensed', 'dispensed', 'not_dispensed',
                         'pending_cancellation', 'cancelled', 'superseded', 'expired')),
  -- VN-3.6, fixed at signing from the lines' control classes
  rx_type              text CHECK (rx_type IN ('c', 'n', 'h')),
  -- VN-3.2/3.3: xxxxxyyyyyyy-z, facility code upper case, random part and suffix lower case; NULL while draft
  code                 text UNIQUE CHECK (code ~ '^[0-9A-Z]{5}[0-9a-z]{7}-[cnh]$'),
  -- VN-1.6: [{code, name, conclusion}], the first is the principal diagnosis
  diagnoses            jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(diagnoses) = 'array'),
  advice               text NOT NULL DEFAULT '' CHECK (length(advice) <= 2000),        -- loi_dan
  note                 text NOT NULL DEFAULT '' CHECK (length(note) <= 2000),          -- luu_y
  follow_up_days       integer CHECK (follow_up_days BETWEEN 1 AND 365),               -- ngay_tai_kham
  -- VN-1.4 / CDS-4: the weight the doses were written for (defaults to the profile's weight)
  weight_kg            numeric(5, 2) CHECK (weight_kg > 0 AND weight_kg < 500),
  -- CDS-5: what the doctor recorded about pregnancy when the patient may be pregnant
  pregnancy_status     text NOT NULL DEFAULT 'unknown' CHECK (pregnancy_status IN ('unknown', 'pregnant', 'not_pregnant')),
  -- VN-2.6: a psychotropic/precursor prescription for long-term treatment may cover 30 days instead of 10
  long_term            boolean NOT NULL DEFAULT false,
  -- VN-1.15: an amendment is a new prescription that supersedes the one it replaces
  replaces_id          uuid UNIQUE REFERENCES prescriptions (id),
  -- CDS-1..5 findings at signing, each with the override reason when one was needed
  findings             jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(findings) = 'array'),
  -- the signature: canonical bytes of the content, the Ed25519 signature over them, and the key used
  signed_content       bytea,
  signature            bytea CHECK (length(signature) = 64),
  signing_key_id       uuid REFERENCES doctor_signing_keys (id),
  issued_at            timestamptz,
  -- VN-2.1/2.2: the last instant drugs may be obtained (23:59:59.999 Asia/Ho_Chi_Minh of issue day + 4)
  valid_until          timestamptz,
  cancel_requested_at  timestamptz,
  cancelled_at         timestamptz,
  cancelled_by         uuid REFERENCES accounts (id),
  cancel_reason        text CHECK (cancel_reason IN ('prescribing_error', 'clinical_contraindication',
                         'change_of_treatment', 'clinical_grounds', 'patient_request', 'pharmacist_request')),
  cancel_note          text CHECK (length(cancel_note) <= 1000),
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT signed_is_complete CHECK (status = 'draft' OR (
    rx_type IS NOT NULL AND code IS NOT NULL AND signed_content IS NOT NULL AND signature IS NOT NULL
    AND signing_key_id IS NOT NULL AND issued_at IS NOT NULL AND valid_until IS NOT NULL)),
  CONSTRAINT code_matches_type CHECK (code IS NULL OR right(code, 1) = rx_type)
);
-- VN-3.5: the 7 random characters are unique within the facility, whatever the type suffix
CREATE UNIQUE INDEX prescriptions_code_random ON prescriptions (left(code, 12)) WHERE code IS NOT NULL;
-- VN-1.10: at most one open normal (C) prescription per consultation (amendments supersede in the same transaction)
CREATE UNIQUE INDEX prescriptions_one_open_c ON prescriptions (consultation_id)
  WHERE rx_type = 'c' AND status IN ('issued', 'with_dispenser', 'partially_dispensed', 'pending_cancellation');
CREATE INDEX prescriptions_patient ON prescriptions (patient_id, created_at DESC);
CREATE INDEX prescriptions_doctor ON prescriptions (doctor_id, created_at DESC);
CREATE INDEX prescriptions_consultation ON prescriptions (consultation_id);
CREATE INDEX prescriptions_expiring ON prescriptions (valid_until) WHERE status IN ('issued', 'with_dispenser', 'partially_dispensed');

-- VN-1.8: one drug per line with strength, dose per administration, administrations per day, route, days, quantity
-- and usage text. drug name/strength/form are copied at writing so the prescription reads the same if the
-- catalogue row is later edited.
CREATE TABLE prescription_lines (
  prescription_id     uuid NOT NULL REFERENCES prescriptions (id) ON DELETE CASCADE,
  position            smallint NOT NULL CHECK (position BETWEEN 1 AND 30),
  drug_id             uuid NOT NULL REFERENCES drugs (id),
  drug_name           text NOT NULL CHECK (length(drug_name) BETWEEN 1 AND 500),
  strength            text NOT NULL CHECK (length(strength) BETWEEN 1 AND 100),
  dosage_form         text NOT NULL CHECK (length(dosage_form) BETWEEN 1 AND 100),
  dose_per_time       numeric(10, 3) NOT NULL CHECK (dose_per_time > 0),
  dose_unit           text NOT NULL CHECK (length(dose_unit) BETWEEN 1 AND 30),
  times_per_day       smallint NOT NULL CHECK (times_per_day BETWEEN 1 AND 24),
  days                smallint NOT NULL CHECK (days BETWEEN 1 AND 90),
  quantity            integer NOT NULL CHECK (quantity > 0),
  quantity_unit       text NOT NULL CHECK (length(quantity_unit) BETWEEN 1 AND 30),
  route               text NOT NULL CHECK (length(route) BETWEEN 1 AND 30),
  usage               text NOT NULL DEFAULT '' CHECK (length(usage) <= 500),
  -- PH-5/PH-10: maintained by pharmacy_link under a row lock; never more than prescribed
  dispensed_quantity  integer NOT NULL DEFAULT 0 CHECK (dispensed_quantity BETWEEN 0 AND quantity),
  PRIMARY KEY (prescription_id, position)
);
CREATE INDEX prescription_lines_drug ON prescription_lines (drug_id);

-- "Any change after signing invalidates it": the database refuses changes to the signed content of a prescription
-- and to the lines of a non-draft, whoever asks. Dispensed quantities and status may still move.
CREATE FUNCTION prescriptions_signed_content_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status <> 'draft' AND (
       NEW.code, NEW.rx_type, NEW.diagnoses, NEW.advice, NEW.note, NEW.follow_up_days, NEW.weight_kg,
       NEW.pregnancy_status, NEW.long_term, NEW.replaces_id, NEW.findings, NEW.signed_content, NEW.signature,
       NEW.signing_key_id, NEW.issued_at, NEW.valid_until, NEW.patient_id, NEW.doctor_id, NEW.consultation_id,
       NEW.facility_id)
     IS DISTINCT FROM (
       OLD.code, OLD.rx_type, OLD.diagnoses, OLD.advice, OLD.note, OLD.follow_up_days, OLD.weight_kg,
       OLD.pregnancy_status, OLD.long_term, OLD.replaces_id, OLD.findings, OLD.signed_content, OLD.signature,
       OLD.signing_key_id, OLD.issued_at, OLD.valid_until, OLD.patient_id, OLD.doctor_id, OLD.consultation_id,
       OLD.facility_id) THEN
    RAISE EXCEPTION 'prescription % is signed; its content cannot change', OLD.id
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  IF OLD.status <> 'draft' AND NEW.status = 'draft' THEN
    RAISE EXCEPTION 'prescription % is signed; it cannot return to draft', OLD.id
      USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER prescriptions_signed_content_immutable BEFORE UPDATE ON prescriptions
  FOR EACH ROW EXECUTE FUNCTION prescriptions_signed_content_immutable();

CREATE FUNCTION prescriptions_no_delete_signed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status <> 'draft' THEN
    RAISE EXCEPTION 'prescription % is signed; it is kept', OLD.id USING ERRCODE = 'integrity_constraint_violation';
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER prescriptions_no_delete_signed BEFORE DELETE ON prescriptions
  FOR EACH ROW EXECUTE FUNCTION prescriptions_no_delete_signed();

CREATE FUNCTION prescription_lines_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  parent_status text;
BEGIN
  SELECT status INTO parent_status FROM prescriptions
   WHERE id = CASE TG_OP WHEN 'INSERT' THEN NEW.prescription_id ELSE OLD.prescription_id END;
  IF parent_status IS NULL OR parent_status = 'draft' THEN
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
  END IF;
  IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - 'dispensed_quantity') = (to_jsonb(OLD) - 'dispensed_quantity') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'prescription % is signed; its lines cannot change', coalesce(NEW.prescription_id, OLD.prescription_id)
    USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER prescription_lines_immutable BEFORE INSERT OR UPDATE OR DELETE ON prescription_lines
  FOR EACH ROW EXECUTE FUNCTION prescription_lines_immutable();

-- Transactional outbox to the national system (API-R3): the row is written in the signing transaction, sent after
-- commit by the worker, retried with backoff on transient failures, never re-sent once accepted.
CREATE TABLE national_rx_outbox (
  prescription_id  uuid PRIMARY KEY REFERENCES prescriptions (id),
  payload          jsonb NOT NULL,                 -- the API-5 body, built from the signed content
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'rejected', 'failed')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  last_error       text,
  -- API-R3: a 422's danh_sach_cac_loi, shown to the doctor; not retried automatically
  rejection        jsonb,
  sent_at          timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX national_rx_outbox_due ON national_rx_outbox (next_attempt_at) WHERE status = 'pending';
