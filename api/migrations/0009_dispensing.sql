-- Dispensing (issue 5): a pharmacy's hold on a prescription, dispenses with their lines, and the prescription events
-- other modules consume (notifications tells the patient).

-- NHS-4 "with dispenser": one pharmacy may hold a prescription while preparing it; the hold lapses on its own.
ALTER TABLE prescriptions
  ADD COLUMN holder_pharmacy_id  uuid REFERENCES pharmacies (id),
  ADD COLUMN hold_expires_at     timestamptz,
  ADD CONSTRAINT hold_is_complete CHECK ((holder_pharmacy_id IS NULL) = (hold_expires_at IS NULL));

-- One sale against a prescription at one pharmacy (PH-2..PH-8). Immutable once written, except for its voiding.
CREATE TABLE dispenses (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  prescription_id      uuid NOT NULL REFERENCES prescriptions (id),
  pharmacy_id          uuid NOT NULL REFERENCES pharmacies (id),
  pharmacist_id        uuid NOT NULL REFERENCES accounts (id),
  -- PH-10: a retried request (same key) returns the first result instead of selling twice
  idempotency_key      text NOT NULL CHECK (length(idempotency_key) BETWEEN 8 AND 100),
  request_hash         bytea NOT NULL,
  invoice_number       text NOT NULL CHECK (length(invoice_number) BETWEEN 1 AND 20),   -- ma_hoa_don (API-7)
  -- PH-6 / VN-3.7: who took the drugs; the ID number is required for narcotic and psychotropic prescriptions
  recipient_name       text NOT NULL CHECK (length(recipient_name) BETWEEN 1 AND 200),
  recipient_id_number  text CHECK (recipient_id_number ~ '^[0-9A-Z]{6,20}$'),
  -- PH-7: what the buyer pays at the counter (spec TM-6: prescription drugs are paid at the pharmacy)
  total_vnd            bigint NOT NULL CHECK (total_vnd >= 0),
  -- PH-8: the prescription as it was at sale time (its signed content) and what was handed out
  snapshot             jsonb NOT NULL,
  created_at           timestamptz NOT NULL DEFAULT now(),
  voided_at            timestamptz,
  voided_by            uuid REFERENCES accounts (id),
  void_reason          text CHECK (length(void_reason) BETWEEN 5 AND 500),
  CONSTRAINT dispenses_idempotency UNIQUE (pharmacy_id, idempotency_key),
  CONSTRAINT void_is_complete CHECK ((voided_at IS NULL) = (voided_by IS NULL) AND (voided_at IS NULL) = (void_reason IS NULL))
);
CREATE INDEX dispenses_prescription ON dispenses (prescription_id);
CREATE INDEX dispenses_pharmacy ON dispenses (pharmacy_id, created_at DESC);

CREATE TABLE dispense_lines (
  dispense_id      uuid NOT NULL REFERENCES dispenses (id),
  position         smallint NOT NULL,                         -- the prescription line
  prescribed_drug_id uuid NOT NULL REFERENCES drugs (id),
  drug_id          uuid NOT NULL REFERENCES drugs (id),       -- what was handed out: a substitute when substituted
  substituted      boolean NOT NULL,
  buyer_consent    boolean NOT NULL DEFAULT false,            -- PH-4: substitution only with the buyer's consent
  quantity         integer NOT NULL CHECK (quantity > 0),
  lot_number       text NOT NULL CHECK (length(lot_number) BETWEEN 1 AND 50),
  expiry_date      date NOT NULL,
  origin           text NOT NULL DEFAULT '' CHECK (length(origin) <= 100),
  unit_price_vnd   bigint NOT NULL CHECK (unit_price_vnd >= 0),
  PRIMARY KEY (dispense_id, position),
  FOREIGN KEY (dispense_id) REFERENCES dispenses (id),
  CONSTRAINT substitution_has_consent CHECK (NOT substituted OR buyer_consent),
  CONSTRAINT substitute_differs CHECK (substituted = (drug_id <> prescribed_drug_id))
);

CREATE FUNCTION dispenses_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' OR TG_TABLE_NAME = 'dispense_lines' THEN
    RAISE EXCEPTION '% rows are kept as written', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF OLD.voided_at IS NOT NULL OR (to_jsonb(NEW) - 'voided_at' - 'voided_by' - 'void_reason')
                                   <> (to_jsonb(OLD) - 'voided_at' - 'voided_by' - 'void_reason') THEN
    RAISE EXCEPTION 'a dispense is only ever voided, once' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER dispenses_immutable BEFORE UPDATE OR DELETE ON dispenses
  FOR EACH ROW EXECUTE FUNCTION dispenses_immutable();
CREATE TRIGGER dispense_lines_immutable BEFORE UPDATE OR DELETE ON dispense_lines
  FOR EACH ROW EXECUTE FUNCTION dispenses_immutable();

-- What happened to a prescription after signing, for other modules to consume (notifications: "your drugs were
-- dispensed"). Append-only, like consultation_events.
CREATE TABLE prescription_events (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  prescription_id  uuid NOT NULL REFERENCES prescriptions (id),
  kind             text NOT NULL CHECK (kind IN ('held', 'released', 'returned', 'dispensed', 'partially_dispensed',
                                                 'dispense_voided', 'cancelled', 'cancellation_requested')),
  pharmacy_id      uuid REFERENCES pharmacies (id),
  dispense_id      uuid REFERENCES dispenses (id),
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX prescription_events_prescription ON prescription_events (prescription_id, id);
CREATE TRIGGER prescription_events_append_only BEFORE UPDATE OR DELETE ON prescription_events
  FOR EACH ROW EXECUTE FUNCTION dispenses_immutable();
