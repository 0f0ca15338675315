-- Erasure on the data subject's request (Decree 13/2023/NĐ-CP Art. 9, 16): the sign-in identity goes, the medical
-- record stays (Law 15/2023/QH15, Circular 32/2023: records are kept at least 10 years). api/patients/data_rights.py
-- says field by field what is erased and what is retained.

-- An erased account is disabled for good and loses its phone number, so the number can sign up anew.
ALTER TABLE accounts ADD COLUMN erased_at timestamptz;
ALTER TABLE accounts ADD CONSTRAINT erased_is_disabled CHECK (erased_at IS NULL OR status = 'disabled');
ALTER TABLE accounts DROP CONSTRAINT patient_has_phone;
ALTER TABLE accounts ADD CONSTRAINT patient_has_phone
  CHECK (role <> 'patient' OR phone IS NOT NULL OR erased_at IS NOT NULL);

-- A profile that was never part of a medical record (no consultation held, no prescription, no dose recorded) is
-- anonymised on erasure; this says when.
ALTER TABLE patients ADD COLUMN anonymised_at timestamptz;
