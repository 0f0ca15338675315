-- The drugs of a draft's lines and the ICD-10 codes of its diagnoses, as one JSON document (eprescription/db.py
-- catalogue_facts). Creating, checking and signing a prescription each read it. Sent from the client, the statement
-- was planned afresh on every call (the planner keeps preferring custom plans for "= ANY (array)"), which cost more
-- than running it; as a function with a generic plan it is planned once per session, like clinical_check_data.
-- TM-5: a code is on the TT 30/2023 list when it or a parent code is (prefix match).
CREATE FUNCTION catalogue_facts(line_drug_ids uuid[], diagnosis_codes text[]) RETURNS json
  LANGUAGE sql STABLE SET plan_cache_mode = force_generic_plan
RETURN json_build_object(
  'drugs', (SELECT coalesce(json_agg(d), '[]') FROM (
              SELECT id, inn, trade_names, strength, dosage_form, route, atc_code, registration_number,
                     control_class, is_medicine, active FROM drugs WHERE id = ANY (line_drug_ids)) d),
  'diagnoses', (SELECT coalesce(json_agg(i), '[]') FROM (
                  SELECT i.code, i.title_vi AS name,
                         EXISTS (SELECT FROM icd10_codes t WHERE t.telemedicine_tt30 AND starts_with(i.code, t.code))
                           AS telemedicine_tt30
                  FROM icd10_codes i WHERE i.code = ANY (diagnosis_codes)) i));
