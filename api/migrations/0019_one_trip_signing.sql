-- Writing and signing a prescription in one request took 14 round trips: BEGIN and COMMIT, five reads (context,
-- catalogue, clinical-check data, the signer's account under a row lock, the response's view) and seven writes.
-- Profiling (issue 8) found the protocol work of those statements, on both sides, larger than any one statement's
-- execution. The request now takes two: prescribing_facts() below reads everything the rules, the checks and the
-- ceremony need, and one statement (eprescription/db.py insert_signed) inserts the prescription already signed,
-- with its lines, outbox rows and audit row, on condition that it spends the doctor's TOTP step.

-- The lines of a signed prescription cannot change, except that the transaction that created the prescription may
-- add them: that is how a prescription inserted in its signed state gets its lines (the content signed over them
-- was computed before the insert). Once that transaction commits, the lines stay as they were signed, whoever asks.
-- (A prescription inserted inside a savepoint has the subtransaction's xid and gets no lines this way.)
CREATE OR REPLACE FUNCTION prescription_lines_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  parent_status text;
  created_here boolean;
BEGIN
  SELECT status, xmin = pg_current_xact_id()::xid INTO parent_status, created_here FROM prescriptions
   WHERE id = CASE TG_OP WHEN 'INSERT' THEN NEW.prescription_id ELSE OLD.prescription_id END;
  IF parent_status IS NULL OR parent_status = 'draft' OR (TG_OP = 'INSERT' AND created_here) THEN
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
  END IF;
  IF TG_OP = 'UPDATE' AND (to_jsonb(NEW) - 'dispensed_quantity') = (to_jsonb(OLD) - 'dispensed_quantity') THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'prescription % is signed; its lines cannot change', coalesce(NEW.prescription_id, OLD.prescription_id)
    USING ERRCODE = 'integrity_constraint_violation';
END $$;

-- The accounts a notification reaches: the account itself, or a patient's account and every guardian's (a child has
-- none). notifications/outbox.py enqueue and the signing statement both address messages through it.
CREATE FUNCTION notification_recipients(to_account uuid, to_patient uuid) RETURNS SETOF uuid
  LANGUAGE sql STABLE
AS $$
  SELECT to_account WHERE to_account IS NOT NULL
  UNION
  SELECT account_id FROM patients WHERE id = to_patient AND account_id IS NOT NULL
  UNION
  SELECT g.account_id FROM guardianships gs JOIN patients g ON g.id = gs.guardian_id
  WHERE gs.dependent_id = to_patient AND g.account_id IS NOT NULL
$$;

-- Everything prescribing reads about a consultation, as one JSON document (eprescription/db.py Facts), or NULL when
-- the consultation does not exist:
--   consultation, patient: who, where and by whom (the signed content's parties; the rules' facts);
--   open_c_code: VN-1.10, another open normal prescription of the consultation (``replacing`` does not count);
--   record_diagnoses: when no diagnosis codes are given, the consultation record's, principal first (VN-1.6);
--   catalogue: catalogue_facts() of the lines' drugs and the diagnoses' codes (given, or the record's);
--   checks: clinical_check_data() of the lines' drugs for this patient, when ``with_checks``;
--   signer: the signing doctor's TOTP state and current key, when ``signer`` is given. Read without a lock: the
--     write that spends the TOTP step re-checks it (insert_signed), so two signatures cannot spend one code.
-- Secrets stay sealed (AES-GCM under LIENTHONG_DATA_KEY) and travel base64-encoded.
CREATE FUNCTION prescribing_facts(for_consultation uuid, replacing uuid, line_drug_ids uuid[], diagnosis_codes text[],
                                  with_checks boolean, excluded_prescriptions uuid[], signer uuid) RETURNS json
  LANGUAGE sql STABLE SET plan_cache_mode = force_generic_plan
RETURN (
  SELECT json_build_object(
    'consultation', json_build_object(
      'id', c.id, 'doctor_id', c.doctor_id, 'patient_id', c.patient_id, 'status', c.status,
      'call_ended_at', c.call_ended_at, 'facility_id', d.facility_id, 'facility_code', f.code,
      'facility_name', f.name, 'facility_address', f.address, 'doctor_name', a.full_name, 'doctor_title', d.title,
      'licence_number', d.licence_number, 'national_rx_code', d.national_rx_code),
    'patient', (SELECT row_to_json(pt) FROM (
                  SELECT p.id, p.full_name, p.date_of_birth, p.sex, p.citizen_id, p.health_insurance_number,
                         p.address, acc.phone, p.weight_kg::float8 AS weight_kg,
                         ARRAY(SELECT x->>'substance' FROM jsonb_array_elements(p.allergies) x) AS allergies,
                         g.full_name AS guardian_name, ga.phone AS guardian_phone, g.address AS guardian_address
                  FROM patients p LEFT JOIN accounts acc ON acc.id = p.account_id
                  LEFT JOIN LATERAL (SELECT guardian_id FROM guardianships WHERE dependent_id = p.id
                                     ORDER BY created_at LIMIT 1) gs ON true
                  LEFT JOIN patients g ON g.id = gs.guardian_id LEFT JOIN accounts ga ON ga.id = g.account_id
                  WHERE p.id = c.patient_id) pt),
    'open_c_code', (SELECT o.code FROM prescriptions o WHERE o.consultation_id = c.id AND o.rx_type = 'c'
                      AND o.status IN ('issued', 'with_dispenser', 'partially_dispensed', 'pending_cancellation')
                      AND o.id IS DISTINCT FROM replacing LIMIT 1),
    'record_diagnoses', CASE WHEN diagnosis_codes IS NULL THEN (
                          SELECT coalesce(json_agg(json_build_object('code', r.code, 'name', i.title_vi,
                                                                     'conclusion', '')
                                                   ORDER BY r.is_principal DESC, r.position), '[]')
                          FROM consultation_diagnoses r JOIN icd10_codes i ON i.code = r.code
                          WHERE r.consultation_id = c.id) END,
    'catalogue', catalogue_facts(line_drug_ids, coalesce(diagnosis_codes, ARRAY(
                   SELECT r.code FROM consultation_diagnoses r WHERE r.consultation_id = c.id))),
    'checks', CASE WHEN with_checks THEN
                clinical_check_data(line_drug_ids, c.patient_id, excluded_prescriptions,
                                    ARRAY(SELECT x->>'substance' FROM jsonb_array_elements(pp.allergies) x)) END,
    'signer', (SELECT json_build_object(
                 'totp_secret_enc', translate(encode(s.totp_secret_enc, 'base64'), E'\n', ''),
                 'totp_last_step', s.totp_last_step, 'locked', coalesce(s.locked_until > now(), false),
                 'key', (SELECT json_build_object('id', k.id,
                                                  'private_key_enc',
                                                  translate(encode(k.private_key_enc, 'base64'), E'\n', ''))
                         FROM doctor_signing_keys k WHERE k.doctor_id = s.id AND k.retired_at IS NULL))
               FROM accounts s WHERE s.id = signer))
  FROM consultations c JOIN doctors d ON d.account_id = c.doctor_id JOIN accounts a ON a.id = d.account_id
  JOIN facilities f ON f.id = d.facility_id
  JOIN patients pp ON pp.id = c.patient_id
  WHERE c.id = for_consultation);
