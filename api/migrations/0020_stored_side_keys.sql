-- Each drug's side keys (drug_side_keys(), migration 0018) are stored with the drug instead of computed on every
-- check. Measured in prescribing_facts (issue 8): computing them for a 5-drug draft took 0.28 ms of the check's
-- 0.7 ms, and confirming the few candidate rules, class members and pregnancy risks with drug_matches_side() (a small
-- query per call) most of the rest. "kind:code is one of the drug's side keys" is exactly drug_matches_side()
-- (tests/eprescription/test_checks.py holds the two to the same answer over every catalogue drug and every code the
-- catalogue's rules use), so clinical_check_data now asks the stored keys throughout.
ALTER TABLE drugs ADD COLUMN side_keys text[] NOT NULL GENERATED ALWAYS AS (drug_side_keys(ingredients, atc_code)) STORED;

CREATE OR REPLACE FUNCTION clinical_check_data(draft_drug_ids uuid[], for_patient uuid, excluded_prescriptions uuid[],
                                    allergy_substances text[]) RETURNS json
  LANGUAGE sql STABLE SET plan_cache_mode = force_generic_plan
RETURN (
  WITH line_drugs AS (
    SELECT d.id, d.inn, d.strength, d.ingredients, d.allergy_keys, coalesce(d.atc_code, '') AS atc_code,
           d.pregnancy_warning, d.weight_based_dosing, r.risk_vi AS pregnancy_risk, r.source_ref AS pregnancy_source,
           d.side_keys
    FROM drugs d
    LEFT JOIN LATERAL (
      SELECT r.risk_vi, r.source_ref FROM pregnancy_risks r
      WHERE d.pregnancy_warning <> 'none' AND r.kind || ':' || r.code = ANY (d.side_keys)
      ORDER BY r.kind = 'ingredient' DESC, length(r.code) DESC LIMIT 1) r ON true
    WHERE d.id = ANY (draft_drug_ids)
  ), active AS (
    SELECT l.drug_id, d.inn, d.strength, d.ingredients, coalesce(d.atc_code, '') AS atc_code, p.code, p.issued_at,
           d.side_keys
    FROM prescriptions p
    JOIN prescription_lines l ON l.prescription_id = p.id
    JOIN drugs d ON d.id = l.drug_id
    WHERE p.patient_id = for_patient AND p.status IN ('issued', 'with_dispenser', 'partially_dispensed', 'dispensed')
      AND p.issued_at + make_interval(days => l.days) > now() AND p.id <> ALL (excluded_prescriptions)
  ), subjects AS MATERIALIZED (
    SELECT id, side_keys FROM line_drugs UNION SELECT drug_id, side_keys FROM active
  ), side_keys AS MATERIALIZED (
    SELECT ARRAY(SELECT DISTINCT k FROM subjects s, unnest(s.side_keys) AS k) AS keys
  ), rules AS (
    -- only the rules both of whose sides name one of the subjects, found through the side indexes; the laterals
    -- then say which subjects each side names
    SELECT i.id, i.severity, i.effect_vi, i.advice_vi, i.source_ref, a.ids AS a_ids, b.ids AS b_ids
    FROM drug_interactions i
    CROSS JOIN LATERAL (SELECT array_agg(s.id) AS ids FROM subjects s
                        WHERE i.a_kind || ':' || i.a_code = ANY (s.side_keys)) a
    CROSS JOIN LATERAL (SELECT array_agg(s.id) AS ids FROM subjects s
                        WHERE i.b_kind || ':' || i.b_code = ANY (s.side_keys)) b
    WHERE i.a_kind || ':' || i.a_code = ANY ((SELECT keys FROM side_keys)::text[])
      AND i.b_kind || ':' || i.b_code = ANY ((SELECT keys FROM side_keys)::text[]) AND a.ids IS NOT NULL AND b.ids IS NOT NULL
  ), allergens AS MATERIALIZED (
    -- allergy_key() is a chain of regular expressions: computed once per allergy
    SELECT DISTINCT ON (k.key) k.key, u.substance
    FROM unnest(allergy_substances) WITH ORDINALITY AS u (substance, n)
    CROSS JOIN LATERAL (SELECT allergy_key(u.substance) AS key) k
    WHERE k.key <> ''
    ORDER BY k.key, u.n
  ), resolved AS (
    SELECT a.substance, a.key, c.code AS class_code, c.label_vi AS class_label, k.ingredient_keys,
           CASE WHEN c.code IS NULL THEN ARRAY(
             SELECT DISTINCT left(d.atc_code, 5) FROM drugs d
             WHERE d.allergy_keys && k.ingredient_keys AND length(d.atc_code) >= 5) ELSE '{}' END AS groups
    FROM allergens a
    LEFT JOIN allergy_class_terms t ON t.term = a.key
    LEFT JOIN allergy_classes c ON c.code = t.class_code
    CROSS JOIN LATERAL (
      SELECT a.key || ARRAY(SELECT s.ingredient FROM allergy_synonyms s WHERE s.term = a.key) AS ingredient_keys) k
  ), class_hits AS (
    SELECT r.key, d.id AS drug_id, m.severity, m.rationale_vi, m.advice_vi, c.source_ref
    FROM resolved r
    JOIN allergy_classes c ON c.code = r.class_code
    CROSS JOIN subjects d
    CROSS JOIN LATERAL (
      SELECT m.severity, m.rationale_vi, m.advice_vi FROM allergy_class_members m
      WHERE m.class_code = r.class_code AND m.kind || ':' || m.code = ANY (d.side_keys)
      ORDER BY m.kind = 'ingredient' DESC, length(m.code) DESC LIMIT 1) m
    WHERE d.id = ANY (draft_drug_ids)
  )
  SELECT json_build_object(
    'drugs', coalesce((SELECT json_agg(d) FROM line_drugs d), '[]'),
    'active', coalesce((SELECT json_agg(a) FROM active a), '[]'),
    'interactions', coalesce((SELECT json_agg(r) FROM rules r), '[]'),
    'allergens', coalesce((SELECT json_agg(r) FROM resolved r), '[]'),
    'class_hits', coalesce((SELECT json_agg(h) FROM class_hits h), '[]'),
    'limits', coalesce((SELECT json_agg(l) FROM paediatric_dose_limits l
                        WHERE l.ingredient IN (SELECT unnest(d.ingredients) FROM line_drugs d)), '[]'))
);
