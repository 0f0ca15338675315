-- Interaction rules are found through an index instead of a scan. clinical_check_data (migration 0007) compared every
-- rule with every drug of the draft and of the patient's active medications: fine for the demo's 44 rules, but it
-- grew linearly with the catalogue (measured: 0.4 ms a call with 44 rules, 3.4 ms with 5,000, 13 ms with 20,000),
-- and it runs on every keystroke of the doctor's dry run and in every signature.
--
-- drug_matches_side() turned around: every (kind, code) an interaction side could hold and still name the drug. An
-- ingredient side names the ingredient itself or the ingredient with salt words before or after it, so its codes
-- are each ingredient name's leading and trailing runs of words (all of the name included); an ATC class side names
-- the drug when it is a prefix of the drug's ATC code. tests/eprescription/test_checks.py holds the two definitions
-- to the same answer. Measured with load_tests/bench_clinical_checks.py: flat from 44 to 20,000 rules (0.5–0.6 ms).
-- A pool connection that planned the function while the table was small keeps scanning until asyncpg recycles it
-- (after 50,000 queries or 300 s idle), so a large catalogue import is followed by a few minutes at the old speed.
CREATE FUNCTION drug_side_keys(ingredients text[], atc_code text) RETURNS text[]
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN ARRAY(
  SELECT 'ingredient:' || array_to_string(CASE WHEN f.from_start THEN w.words[1:n] ELSE w.words[n:] END, ' ')
  FROM unnest(ingredients) AS i (name)
  CROSS JOIN LATERAL (SELECT string_to_array(i.name, ' ') AS words) w
  CROSS JOIN LATERAL generate_series(1, cardinality(w.words)) AS n
  CROSS JOIN (VALUES (true), (false)) AS f (from_start)
  UNION ALL
  SELECT 'atc_class:' || left(atc_code, n) FROM generate_series(1, length(coalesce(atc_code, ''))) AS n);

-- the side's "kind:code", as drug_side_keys() spells it
CREATE INDEX drug_interactions_a_side ON drug_interactions ((a_kind || ':' || a_code));
CREATE INDEX drug_interactions_b_side ON drug_interactions ((b_kind || ':' || b_code));

CREATE OR REPLACE FUNCTION clinical_check_data(draft_drug_ids uuid[], for_patient uuid, excluded_prescriptions uuid[],
                                    allergy_substances text[]) RETURNS json
  LANGUAGE sql STABLE SET plan_cache_mode = force_generic_plan
RETURN (
  WITH line_drugs AS (
    SELECT d.id, d.inn, d.strength, d.ingredients, d.allergy_keys, coalesce(d.atc_code, '') AS atc_code,
           d.pregnancy_warning, d.weight_based_dosing, r.risk_vi AS pregnancy_risk, r.source_ref AS pregnancy_source
    FROM drugs d
    LEFT JOIN LATERAL (
      SELECT r.risk_vi, r.source_ref FROM pregnancy_risks r
      WHERE d.pregnancy_warning <> 'none' AND drug_matches_side(r.kind, r.code, d.ingredients, d.atc_code)
      ORDER BY r.kind = 'ingredient' DESC, length(r.code) DESC LIMIT 1) r ON true
    WHERE d.id = ANY (draft_drug_ids)
  ), active AS (
    SELECT l.drug_id, d.inn, d.strength, d.ingredients, coalesce(d.atc_code, '') AS atc_code, p.code, p.issued_at
    FROM prescriptions p
    JOIN prescription_lines l ON l.prescription_id = p.id
    JOIN drugs d ON d.id = l.drug_id
    WHERE p.patient_id = for_patient AND p.status IN ('issued', 'with_dispenser', 'partially_dispensed', 'dispensed')
      AND p.issued_at + make_interval(days => l.days) > now() AND p.id <> ALL (excluded_prescriptions)
  ), subjects AS MATERIALIZED (
    -- drug_matches_side() is not inlined (it holds a subquery), so each call costs a small query. "The side's code
    -- occurs in the drug's ingredients or ATC code" is a cheap superset of it, evaluated first (quals run cheapest
    -- first), so the function only confirms the few rules and class members that can match.
    SELECT s.id, s.ingredients, s.atc_code, array_to_string(s.ingredients, '|') || '|' || s.atc_code AS haystack
    FROM (SELECT id, ingredients, atc_code FROM line_drugs UNION SELECT drug_id, ingredients, atc_code FROM active) s
  ), side_keys AS MATERIALIZED (
    SELECT ARRAY(SELECT DISTINCT k FROM subjects s, unnest(drug_side_keys(s.ingredients, s.atc_code)) AS k) AS keys
  ), rules AS (
    -- only the rules both of whose sides name one of the subjects, found through the side indexes; the laterals
    -- then say which subjects each side names
    SELECT i.id, i.severity, i.effect_vi, i.advice_vi, i.source_ref, a.ids AS a_ids, b.ids AS b_ids
    FROM drug_interactions i
    CROSS JOIN LATERAL (SELECT array_agg(s.id) AS ids FROM subjects s
                        WHERE strpos(s.haystack, i.a_code) > 0
                          AND drug_matches_side(i.a_kind, i.a_code, s.ingredients, s.atc_code)) a
    CROSS JOIN LATERAL (SELECT array_agg(s.id) AS ids FROM subjects s
                        WHERE strpos(s.haystack, i.b_code) > 0
                          AND drug_matches_side(i.b_kind, i.b_code, s.ingredients, s.atc_code)) b
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
      WHERE m.class_code = r.class_code AND strpos(d.haystack, m.code) > 0
        AND drug_matches_side(m.kind, m.code, d.ingredients, d.atc_code)
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
