-- Drug catalogue (issue 4): where catalogue rows come from, the drugs, and drug-drug interaction rules; seeded with
-- the DEMO catalogue of the e-prescription spec §8.2 and the interaction pairs of §8.3.

-- A dataset the catalogue was loaded from: the shipped demo seed, or an administrator's CSV import. demo_data is what
-- the API reports, so a console can say plainly when it is showing demonstration data.
CREATE TABLE drug_sources (
  code        text PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9._-]{1,59}$'),
  title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 300),
  demo_data   boolean NOT NULL,
  notes       text NOT NULL DEFAULT '' CHECK (length(notes) <= 4000),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The stable identity of a catalogue row, for upserts on re-import: the registration number (số đăng ký) when there
-- is one, otherwise INN + strength + dosage form. Folded so that case, accents and spacing do not create duplicates.
CREATE FUNCTION drug_key(registration_number text, inn text, strength text, dosage_form text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE WHEN registration_number IS NOT NULL THEN 'reg:' || upper(registration_number)
              ELSE 'inn:' || regexp_replace(search_fold(inn), '\s+', ' ', 'g') || '|'
                   || regexp_replace(search_fold(strength), '\s+', ' ', 'g') || '|'
                   || regexp_replace(search_fold(dosage_form), '\s+', ' ', 'g') END;

-- Everything a search may match, folded. array_to_string() is only STABLE in general (element output functions may
-- depend on settings), but for text[] it is not, so this wrapper may be IMMUTABLE and feed a generated column.
CREATE FUNCTION drug_search_doc(inn text, strength text, dosage_form text, trade_names text[], atc_code text,
                                registration_number text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN search_fold(inn || ' ' || strength || ' ' || array_to_string(trade_names, ' ') || ' ' || dosage_form
                     || ' ' || coalesce(atc_code, '') || ' ' || coalesce(registration_number, ''));

CREATE TABLE drugs (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- VN-1.7: single-ingredient drugs are prescribed by INN (Vietnamese usage); combinations read "A + B"
  inn                  text NOT NULL CHECK (length(inn) BETWEEN 1 AND 200),
  -- active ingredients, folded (search_fold): what interaction rules and duplicate-therapy checks (CDS-1, CDS-3)
  -- compare. The seed drops salt names ('losartan' for "Losartan kali"); imports may keep them (see
  -- drug_matches_side)
  ingredients          text[] NOT NULL CHECK (cardinality(ingredients) BETWEEN 1 AND 10),
  strength             text NOT NULL CHECK (length(strength) BETWEEN 1 AND 100),
  dosage_form          text NOT NULL CHECK (length(dosage_form) BETWEEN 1 AND 100),
  route                text NOT NULL CHECK (route IN ('oral', 'sublingual', 'buccal', 'inhalation', 'nasal',
                         'topical', 'transdermal', 'ophthalmic', 'otic', 'rectal', 'vaginal', 'injection', 'other')),
  -- WHO ATC code at any level (a group such as 'A07CA' when no substance code applies); NULL when unknown
  atc_code             text CHECK (atc_code ~ '^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$'),
  -- §9 U-13: OTC status was not checked, so every seed drug is prescription-only (the safer default)
  rx_required          boolean NOT NULL DEFAULT true,
  -- TT 20/2017 lists: narcotic (gây nghiện), psychotropic (hướng thần), precursor (tiền chất)
  control_class        text NOT NULL DEFAULT 'none'
                         CHECK (control_class IN ('none', 'narcotic', 'psychotropic', 'precursor')),
  -- VN-3.1/3.6: the prescription form the drug forces: c normal, n narcotic, h psychotropic or precursor
  prescription_type    text NOT NULL GENERATED ALWAYS AS (
                         CASE control_class WHEN 'none' THEN 'c' WHEN 'narcotic' THEN 'n' ELSE 'h' END) STORED,
  -- VN-1.11: functional foods and other non-medicines may be catalogued but never prescribed
  is_medicine          boolean NOT NULL DEFAULT true,
  -- số đăng ký (VD-…, VN-…, QLĐB-…, or the newer all-digit numbers); unique through drug_key
  registration_number  text CHECK (registration_number ~ '^[0-9A-ZĐ][0-9A-ZĐ./-]{2,39}$'),
  trade_names          text[] NOT NULL DEFAULT '{}' CHECK (cardinality(trade_names) <= 20),
  -- CDS-5 flags carried over from spec §8.2 ('P' = warn, 'P (block)' = block); unsourced 'P?' rows are 'none'
  pregnancy_warning    text NOT NULL DEFAULT 'none' CHECK (pregnancy_warning IN ('none', 'warn', 'block')),
  -- CDS-4 / VN-1.4: paediatric dosing is per kg of body weight (spec §8.2 flag 'kg')
  weight_based_dosing  boolean NOT NULL DEFAULT false,
  -- withdrawn rows stay (prescriptions keep pointing at them) but leave the search
  active               boolean NOT NULL DEFAULT true,
  source_code          text NOT NULL REFERENCES drug_sources (code),
  source_ref           text NOT NULL CHECK (length(source_ref) BETWEEN 1 AND 500),  -- citation of this very row
  drug_key             text NOT NULL UNIQUE GENERATED ALWAYS AS (
                         drug_key(registration_number, inn, strength, dosage_form)) STORED,
  -- name + strength folded: what a prefix typed into the console is compared with first
  name_fold            text NOT NULL GENERATED ALWAYS AS (search_fold(inn || ' ' || strength)) STORED,
  search_doc           text NOT NULL GENERATED ALWAYS AS (
                         drug_search_doc(inn, strength, dosage_form, trade_names, atc_code, registration_number)) STORED,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);
-- Substring and typo search (LIKE '%q%', <%) over names, trade names, forms, codes; type-ahead latency rests on it.
CREATE INDEX drugs_search ON drugs USING gin (search_doc gin_trgm_ops) WHERE active;
-- ATC class membership (interaction class rules, duplicate therapy by ATC group) is a prefix match.
CREATE INDEX drugs_atc ON drugs (atc_code text_pattern_ops);
CREATE INDEX drugs_ingredients ON drugs USING gin (ingredients);
CREATE INDEX drugs_source ON drugs (source_code);

-- Called by the CSV importer at the end of a bulk load. Until then the new rows sit in the GIN pending list, which
-- every search scans linearly, and the planner still believes the table holds the 80 rows it last saw: typo searches
-- were 10x slower after importing 20,000 drugs until autovacuum caught up. Merging the list costs far less than
-- inserting into a fully merged index row by row (fastupdate off tripled the import time). Both operations need the
-- table's owner, hence SECURITY DEFINER, with a pinned search_path.
CREATE FUNCTION drugs_after_bulk_load() RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
BEGIN
  PERFORM gin_clean_pending_list('public.drugs_search'::regclass);
  ANALYZE public.drugs;
END $$;
REVOKE ALL ON FUNCTION drugs_after_bulk_load() FROM PUBLIC;
DO $$
BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'lienthong_app') THEN
    GRANT EXECUTE ON FUNCTION drugs_after_bulk_load() TO lienthong_app;
  END IF;
END $$;

-- Drug-drug interaction rules (CDS-1). Each side is an ingredient (folded, as in drugs.ingredients) or an ATC class
-- prefix that expands to every catalogue member of the class (spec §8.3). A pair is stored once, in either order.
CREATE TABLE drug_interactions (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  a_kind       text NOT NULL CHECK (a_kind IN ('ingredient', 'atc_class')),
  a_code       text NOT NULL,
  a_label      text NOT NULL CHECK (length(a_label) BETWEEN 1 AND 200),
  b_kind       text NOT NULL CHECK (b_kind IN ('ingredient', 'atc_class')),
  b_code       text NOT NULL,
  b_label      text NOT NULL CHECK (length(b_label) BETWEEN 1 AND 200),
  -- CDS-1 scale: contraindicated > major > moderate > minor; contraindicated blocks signing without an override
  severity     text NOT NULL CHECK (severity IN ('contraindicated', 'major', 'moderate', 'minor')),
  effect       text NOT NULL CHECK (length(effect) BETWEEN 1 AND 1000),   -- what happens and why (mechanism)
  advice       text NOT NULL CHECK (length(advice) BETWEEN 1 AND 1000),   -- what the prescriber should do
  source_code  text NOT NULL REFERENCES drug_sources (code),
  source_ref   text NOT NULL CHECK (length(source_ref) BETWEEN 1 AND 1000),
  created_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT a_code_form CHECK (CASE a_kind WHEN 'ingredient' THEN a_code = search_fold(a_code) AND a_code <> ''
                                ELSE a_code ~ '^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$' END),
  CONSTRAINT b_code_form CHECK (CASE b_kind WHEN 'ingredient' THEN b_code = search_fold(b_code) AND b_code <> ''
                                ELSE b_code ~ '^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$' END),
  CONSTRAINT two_sides CHECK ((a_kind, a_code) <> (b_kind, b_code))
);
CREATE UNIQUE INDEX drug_interactions_pair ON drug_interactions (
  least(a_kind || ':' || a_code, b_kind || ':' || b_code), greatest(a_kind || ':' || a_code, b_kind || ':' || b_code));

-- Whether an interaction side names a drug: the one definition the catalogue and the clinical checks share. An
-- ingredient side also names the ingredient with a salt word before or after it ('warfarin' names "warfarin natri",
-- 'diclofenac' names "natri diclofenac"), so an imported catalogue that keeps salt names is still checked.
CREATE FUNCTION drug_matches_side(kind text, code text, ingredients text[], atc_code text) RETURNS boolean
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN CASE kind
           WHEN 'ingredient' THEN EXISTS (
             SELECT FROM unnest(ingredients) AS i (name)
             WHERE i.name = code OR starts_with(i.name, code || ' ') OR right(i.name, length(code) + 1) = ' ' || code)
           ELSE coalesce(starts_with(atc_code, code), false) END;

-- ---------------------------------------------------------------------------------------------------- seed (DEMO)

INSERT INTO drug_sources (code, title, demo_data, notes) VALUES (
  'lienthong-demo-seed',
  'Lienthong demo catalogue: e-prescription spec §8.2 (drugs) and §8.3 (interactions)',
  true,
  'DEMONSTRATION DATA, NOT FOR CLINICAL USE. About 80 common Vietnamese outpatient drugs written in our own words. '
  'ATC codes checked against the WHO ATC/DDD index (scrape fabkury/atcd, 2026-04-25); individual codes are quoted as '
  'facts, no bulk copy (spec §9 U-12). Strengths and dosage forms are typical presentations, NOT checked against '
  'Vietnamese registration data, and OTC status was not checked, so every drug is prescription-only (U-13). '
  'Narcotic/psychotropic classes are expected under TT 20/2017, not verified (U-14). No registration numbers. Trade '
  'names are widely known brands of the same ingredient and presentation, not checked against DAV registrations. '
  'Spec rows #44 (Oresol) and #45 (kẽm sulfat) are left out: the spec gives no definite strength for them. '
  'Interaction severities are ours on the 4-level CDS-1 scale, each pair citing the public text that justifies it; '
  'I-7 (colchicine + clarithromycin) is stored as contraindicated, the label''s level for renal or hepatic '
  'impairment, because that function is not recorded; I-22 (penicillin allergy) is an allergy rule (CDS-2), not an '
  'interaction, and is not stored here. Class rules of I-23 follow a third-party rendering of the ONC high-priority '
  'list (U-15).');

INSERT INTO drugs (inn, ingredients, strength, dosage_form, route, atc_code, control_class, trade_names,
                   pregnancy_warning, weight_based_dosing, source_code, source_ref)
SELECT inn, ingredients::text[], strength, dosage_form, route, atc_code, control_class, trade_names::text[],
       pregnancy, kg, 'lienthong-demo-seed',
       'e-prescription spec §8.2 #' || n || '; ATC: WHO ATC/DDD index'
         || CASE WHEN trade_names <> '{}' THEN '; trade names: well-known brands, not checked against DAV' ELSE '' END
FROM (VALUES
  (1,  'Paracetamol', '{paracetamol}', '500 mg', 'viên nén', 'oral', 'N02BE01', 'none', '{Panadol}', 'none', false),
  (2,  'Paracetamol', '{paracetamol}', '250 mg', 'gói thuốc bột/cốm', 'oral', 'N02BE01', 'none', '{Efferalgan,Hapacol}', 'none', true),
  (3,  'Paracetamol', '{paracetamol}', '120 mg/5 ml', 'siro / hỗn dịch uống', 'oral', 'N02BE01', 'none', '{Calpol}', 'none', true),
  (4,  'Ibuprofen', '{ibuprofen}', '400 mg', 'viên nén bao phim', 'oral', 'M01AE01', 'none', '{Brufen}', 'none', false),
  (5,  'Ibuprofen', '{ibuprofen}', '100 mg/5 ml', 'hỗn dịch uống', 'oral', 'M01AE01', 'none', '{Nurofen for Children}', 'none', true),
  (6,  'Diclofenac natri', '{diclofenac}', '50 mg', 'viên bao tan trong ruột', 'oral', 'M01AB05', 'none', '{Voltaren}', 'none', false),
  (7,  'Meloxicam', '{meloxicam}', '7,5 mg', 'viên nén', 'oral', 'M01AC06', 'none', '{Mobic}', 'none', false),
  (8,  'Celecoxib', '{celecoxib}', '200 mg', 'viên nang', 'oral', 'M01AH01', 'none', '{Celebrex}', 'none', false),
  (9,  'Acid acetylsalicylic (aspirin)', '{acid acetylsalicylic}', '81 mg', 'viên bao tan trong ruột', 'oral', 'B01AC06', 'none', '{}', 'none', false),
  (10, 'Amoxicilin', '{amoxicilin}', '500 mg', 'viên nang', 'oral', 'J01CA04', 'none', '{Amoxil}', 'none', false),
  (11, 'Amoxicilin', '{amoxicilin}', '250 mg', 'gói bột pha hỗn dịch', 'oral', 'J01CA04', 'none', '{Clamoxyl}', 'none', true),
  (12, 'Amoxicilin + acid clavulanic', '{amoxicilin,acid clavulanic}', '500 mg/125 mg', 'viên nén bao phim', 'oral', 'J01CR02', 'none', '{Augmentin}', 'none', false),
  (13, 'Cefuroxim', '{cefuroxim}', '500 mg', 'viên nén bao phim', 'oral', 'J01DC02', 'none', '{Zinnat}', 'none', false),
  (14, 'Cefixim', '{cefixim}', '200 mg', 'viên nang', 'oral', 'J01DD08', 'none', '{}', 'none', false),
  (15, 'Cefadroxil', '{cefadroxil}', '500 mg', 'viên nang', 'oral', 'J01DB05', 'none', '{}', 'none', false),
  (16, 'Azithromycin', '{azithromycin}', '500 mg', 'viên nén', 'oral', 'J01FA10', 'none', '{Zithromax}', 'none', false),
  (17, 'Clarithromycin', '{clarithromycin}', '500 mg', 'viên nén bao phim', 'oral', 'J01FA09', 'none', '{Klacid}', 'none', false),
  (18, 'Ciprofloxacin', '{ciprofloxacin}', '500 mg', 'viên nén bao phim', 'oral', 'J01MA02', 'none', '{Ciprobay}', 'none', false),
  (19, 'Levofloxacin', '{levofloxacin}', '500 mg', 'viên nén bao phim', 'oral', 'J01MA12', 'none', '{Tavanic}', 'none', false),
  (20, 'Sulfamethoxazol + trimethoprim', '{sulfamethoxazol,trimethoprim}', '800 mg/160 mg', 'viên nén', 'oral', 'J01EE01', 'none', '{Bactrim forte}', 'none', false),
  (21, 'Metronidazol', '{metronidazol}', '250 mg', 'viên nén', 'oral', 'P01AB01', 'none', '{Flagyl}', 'none', false),
  (22, 'Doxycyclin', '{doxycyclin}', '100 mg', 'viên nang', 'oral', 'J01AA02', 'none', '{Vibramycin}', 'none', false),
  (23, 'Fluconazol', '{fluconazol}', '150 mg', 'viên nang', 'oral', 'J02AC01', 'none', '{Diflucan}', 'none', false),
  (24, 'Aciclovir', '{aciclovir}', '400 mg', 'viên nén', 'oral', 'J05AB01', 'none', '{Zovirax}', 'none', false),
  (25, 'Oseltamivir', '{oseltamivir}', '75 mg', 'viên nang', 'oral', 'J05AH02', 'none', '{Tamiflu}', 'none', false),
  (26, 'Albendazol', '{albendazol}', '400 mg', 'viên nén', 'oral', 'P02CA03', 'none', '{Zentel}', 'none', false),
  (27, 'Mebendazol', '{mebendazol}', '500 mg', 'viên nén', 'oral', 'P02CA01', 'none', '{Vermox}', 'none', false),
  (28, 'Loratadin', '{loratadin}', '10 mg', 'viên nén', 'oral', 'R06AX13', 'none', '{Clarityne}', 'none', false),
  (29, 'Cetirizin', '{cetirizin}', '10 mg', 'viên nén bao phim', 'oral', 'R06AE07', 'none', '{Zyrtec}', 'none', false),
  (30, 'Fexofenadin', '{fexofenadin}', '180 mg', 'viên nén bao phim', 'oral', 'R06AX26', 'none', '{Telfast}', 'none', false),
  (31, 'Clorphenamin', '{clorphenamin}', '4 mg', 'viên nén', 'oral', 'R06AB04', 'none', '{}', 'none', false),
  (32, 'Salbutamol', '{salbutamol}', '100 mcg/liều', 'bình xịt định liều', 'inhalation', 'R03AC02', 'none', '{Ventolin}', 'none', false),
  (33, 'Salbutamol', '{salbutamol}', '2 mg', 'viên nén', 'oral', 'R03CC02', 'none', '{}', 'none', false),
  (34, 'Ambroxol', '{ambroxol}', '30 mg', 'viên nén', 'oral', 'R05CB06', 'none', '{Mucosolvan}', 'none', false),
  (35, 'Acetylcystein', '{acetylcystein}', '200 mg', 'gói bột', 'oral', 'R05CB01', 'none', '{Acemuc,Fluimucil}', 'none', false),
  (36, 'Bromhexin', '{bromhexin}', '8 mg', 'viên nén', 'oral', 'R05CB02', 'none', '{Bisolvon}', 'none', false),
  (37, 'Dextromethorphan', '{dextromethorphan}', '15 mg', 'viên nén', 'oral', 'R05DA09', 'none', '{}', 'none', false),
  (38, 'Omeprazol', '{omeprazol}', '20 mg', 'viên nang tan trong ruột', 'oral', 'A02BC01', 'none', '{Losec}', 'none', false),
  (39, 'Esomeprazol', '{esomeprazol}', '40 mg', 'viên nén bao tan trong ruột', 'oral', 'A02BC05', 'none', '{Nexium}', 'none', false),
  (40, 'Famotidin', '{famotidin}', '40 mg', 'viên nén', 'oral', 'A02BA03', 'none', '{Pepcid}', 'none', false),
  (41, 'Domperidon', '{domperidon}', '10 mg', 'viên nén', 'oral', 'A03FA03', 'none', '{Motilium}', 'none', false),
  (42, 'Metoclopramid', '{metoclopramid}', '10 mg', 'viên nén', 'oral', 'A03FA01', 'none', '{Primperan}', 'none', false),
  (43, 'Loperamid', '{loperamid}', '2 mg', 'viên nang', 'oral', 'A07DA03', 'none', '{Imodium}', 'none', false),
  (46, 'Amlodipin', '{amlodipin}', '5 mg', 'viên nén', 'oral', 'C08CA01', 'none', '{Amlor,Norvasc}', 'none', false),
  (47, 'Enalapril', '{enalapril}', '5 mg', 'viên nén', 'oral', 'C09AA02', 'none', '{Renitec}', 'warn', false),
  (48, 'Perindopril', '{perindopril}', '5 mg', 'viên nén', 'oral', 'C09AA04', 'none', '{Coversyl}', 'warn', false),
  (49, 'Losartan kali', '{losartan}', '50 mg', 'viên nén bao phim', 'oral', 'C09CA01', 'none', '{Cozaar}', 'warn', false),
  (50, 'Valsartan', '{valsartan}', '80 mg', 'viên nén bao phim', 'oral', 'C09CA03', 'none', '{Diovan}', 'warn', false),
  (51, 'Bisoprolol', '{bisoprolol}', '5 mg', 'viên nén', 'oral', 'C07AB07', 'none', '{Concor}', 'none', false),
  (52, 'Hydroclorothiazid', '{hydroclorothiazid}', '25 mg', 'viên nén', 'oral', 'C03AA03', 'none', '{}', 'none', false),
  (53, 'Spironolacton', '{spironolacton}', '25 mg', 'viên nén', 'oral', 'C03DA01', 'none', '{Aldactone}', 'none', false),
  (54, 'Atorvastatin', '{atorvastatin}', '20 mg', 'viên nén bao phim', 'oral', 'C10AA05', 'none', '{Lipitor}', 'none', false),
  (55, 'Simvastatin', '{simvastatin}', '20 mg', 'viên nén bao phim', 'oral', 'C10AA01', 'none', '{Zocor}', 'none', false),
  (56, 'Rosuvastatin', '{rosuvastatin}', '10 mg', 'viên nén bao phim', 'oral', 'C10AA07', 'none', '{Crestor}', 'none', false),
  (57, 'Clopidogrel', '{clopidogrel}', '75 mg', 'viên nén bao phim', 'oral', 'B01AC04', 'none', '{Plavix}', 'none', false),
  (58, 'Warfarin', '{warfarin}', '2 mg', 'viên nén', 'oral', 'B01AA03', 'none', '{Coumadin}', 'warn', false),
  (59, 'Metformin', '{metformin}', '500 mg', 'viên nén bao phim', 'oral', 'A10BA02', 'none', '{Glucophage}', 'none', false),
  (60, 'Gliclazid', '{gliclazid}', '30 mg', 'viên giải phóng biến đổi', 'oral', 'A10BB09', 'none', '{Diamicron MR}', 'none', false),
  (61, 'Glimepirid', '{glimepirid}', '2 mg', 'viên nén', 'oral', 'A10BB12', 'none', '{Amaryl}', 'none', false),
  (62, 'Levothyroxin natri', '{levothyroxin}', '50 mcg', 'viên nén', 'oral', 'H03AA01', 'none', '{Levothyrox}', 'none', false),
  (63, 'Thiamazol', '{thiamazol}', '5 mg', 'viên nén', 'oral', 'H03BB02', 'none', '{Thyrozol}', 'none', false),
  (64, 'Glyceryl trinitrat', '{glyceryl trinitrat}', '0,4 mg/liều', 'xịt dưới lưỡi', 'sublingual', 'C01DA02', 'none', '{Nitrolingual}', 'none', false),
  (65, 'Isosorbid mononitrat', '{isosorbid mononitrat}', '60 mg', 'viên giải phóng kéo dài', 'oral', 'C01DA14', 'none', '{Imdur}', 'none', false),
  (66, 'Digoxin', '{digoxin}', '0,25 mg', 'viên nén', 'oral', 'C01AA05', 'none', '{Lanoxin}', 'none', false),
  (67, 'Amiodaron', '{amiodaron}', '200 mg', 'viên nén', 'oral', 'C01BD01', 'none', '{Cordarone}', 'none', false),
  (68, 'Prednisolon', '{prednisolon}', '5 mg', 'viên nén', 'oral', 'H02AB06', 'none', '{}', 'none', false),
  (69, 'Methylprednisolon', '{methylprednisolon}', '16 mg', 'viên nén', 'oral', 'H02AB04', 'none', '{Medrol}', 'none', false),
  (70, 'Colchicin', '{colchicin}', '1 mg', 'viên nén', 'oral', 'M04AC01', 'none', '{}', 'none', false),
  (71, 'Allopurinol', '{allopurinol}', '300 mg', 'viên nén', 'oral', 'M04AA01', 'none', '{Zyloric}', 'none', false),
  (72, 'Sildenafil', '{sildenafil}', '50 mg', 'viên nén bao phim', 'oral', 'G04BE03', 'none', '{Viagra}', 'none', false),
  (73, 'Tizanidin', '{tizanidin}', '2 mg', 'viên nén', 'oral', 'M03BX02', 'none', '{Sirdalud}', 'none', false),
  (74, 'Methotrexat', '{methotrexat}', '2,5 mg', 'viên nén', 'oral', 'L04AX03', 'none', '{}', 'none', false),
  (75, 'Azathioprin', '{azathioprin}', '50 mg', 'viên nén bao phim', 'oral', 'L04AX01', 'none', '{Imuran}', 'none', false),
  (76, 'Isotretinoin', '{isotretinoin}', '10 mg', 'viên nang mềm', 'oral', 'D10BA01', 'none', '{Roaccutane}', 'block', false),
  (77, 'Misoprostol', '{misoprostol}', '200 mcg', 'viên nén', 'oral', 'A02BB01', 'none', '{Cytotec}', 'block', false),
  (78, 'Natri valproat (acid valproic)', '{acid valproic}', '500 mg', 'viên bao tan trong ruột', 'oral', 'N03AG01', 'none', '{Depakine}', 'warn', false),
  (79, 'Morphin sulfat', '{morphin}', '30 mg', 'viên giải phóng kéo dài', 'oral', 'N02AA01', 'narcotic', '{MST Continus}', 'none', false),
  (80, 'Diazepam', '{diazepam}', '5 mg', 'viên nén', 'oral', 'N05BA01', 'psychotropic', '{Seduxen,Valium}', 'none', false),
  (81, 'Alprazolam', '{alprazolam}', '0,5 mg', 'viên nén', 'oral', 'N05BA12', 'psychotropic', '{Xanax}', 'none', false),
  (82, 'Phenobarbital', '{phenobarbital}', '100 mg', 'viên nén', 'oral', 'N03AA02', 'psychotropic', '{Gardenal}', 'none', false),
  (83, 'Zolpidem', '{zolpidem}', '10 mg', 'viên nén bao phim', 'oral', 'N05CF02', 'psychotropic', '{Stilnox}', 'none', false)
) AS seed (n, inn, ingredients, strength, dosage_form, route, atc_code, control_class, trade_names, pregnancy, kg);

-- Interaction pairs of spec §8.3, in our words. Where the spec names a class ("strong CYP3A4 inhibitors", "any
-- organic nitrate", "ACE inhibitors"), the class is spelled out as the ingredients it lists or as its ATC group, so
-- the rule also covers drugs an administrator imports later.
INSERT INTO drug_interactions (a_kind, a_code, a_label, b_kind, b_code, b_label, severity, effect, advice,
                               source_code, source_ref)
SELECT a_kind, a_code, a_label, b_kind, b_code, b_label, severity, effect, advice, 'lienthong-demo-seed', ref
FROM (VALUES
  -- I-1 simvastatin × strong CYP3A4 inhibitors
  ('ingredient', 'simvastatin', 'Simvastatin', 'ingredient', 'clarithromycin', 'Clarithromycin', 'contraindicated',
   'Strong CYP3A4 inhibition raises simvastatin exposure many-fold: myopathy and rhabdomyolysis.',
   'Do not combine; suspend simvastatin for the course of the antibiotic or choose another antibiotic.',
   'spec §8.3 I-1; simvastatin (Zocor) labelling, drug interactions: https://uat.mimsdev.com/hongkong/drug/info/zocor/drug-interactions'),
  ('ingredient', 'simvastatin', 'Simvastatin', 'ingredient', 'erythromycin', 'Erythromycin', 'contraindicated',
   'Strong CYP3A4 inhibition raises simvastatin exposure many-fold: myopathy and rhabdomyolysis.',
   'Do not combine; suspend simvastatin for the course of the antibiotic or choose another antibiotic.',
   'spec §8.3 I-1; simvastatin (Zocor) labelling, drug interactions: https://uat.mimsdev.com/hongkong/drug/info/zocor/drug-interactions'),
  ('ingredient', 'simvastatin', 'Simvastatin', 'ingredient', 'itraconazol', 'Itraconazol', 'contraindicated',
   'Strong CYP3A4 inhibition raises simvastatin exposure many-fold: myopathy and rhabdomyolysis.',
   'Do not combine; suspend simvastatin during antifungal treatment.',
   'spec §8.3 I-1; simvastatin (Zocor) labelling, drug interactions: https://uat.mimsdev.com/hongkong/drug/info/zocor/drug-interactions'),
  ('ingredient', 'simvastatin', 'Simvastatin', 'ingredient', 'ketoconazol', 'Ketoconazol', 'contraindicated',
   'Strong CYP3A4 inhibition raises simvastatin exposure many-fold: myopathy and rhabdomyolysis.',
   'Do not combine; suspend simvastatin during antifungal treatment.',
   'spec §8.3 I-1; simvastatin (Zocor) labelling, drug interactions: https://uat.mimsdev.com/hongkong/drug/info/zocor/drug-interactions'),
  ('ingredient', 'simvastatin', 'Simvastatin', 'ingredient', 'posaconazol', 'Posaconazol', 'contraindicated',
   'Strong CYP3A4 inhibition raises simvastatin exposure many-fold: myopathy and rhabdomyolysis.',
   'Do not combine; suspend simvastatin during antifungal treatment.',
   'spec §8.3 I-1; simvastatin (Zocor) labelling, drug interactions: https://uat.mimsdev.com/hongkong/drug/info/zocor/drug-interactions'),
  ('ingredient', 'simvastatin', 'Simvastatin', 'ingredient', 'voriconazol', 'Voriconazol', 'contraindicated',
   'Strong CYP3A4 inhibition raises simvastatin exposure many-fold: myopathy and rhabdomyolysis.',
   'Do not combine; suspend simvastatin during antifungal treatment.',
   'spec §8.3 I-1; simvastatin (Zocor) labelling, drug interactions: https://uat.mimsdev.com/hongkong/drug/info/zocor/drug-interactions'),
  ('ingredient', 'simvastatin', 'Simvastatin', 'atc_class', 'J05AE', 'HIV protease inhibitors (J05AE)', 'contraindicated',
   'Strong CYP3A4 inhibition raises simvastatin exposure many-fold: myopathy and rhabdomyolysis.',
   'Do not combine; use a statin not metabolised by CYP3A4.',
   'spec §8.3 I-1; simvastatin (Zocor) labelling, drug interactions: https://uat.mimsdev.com/hongkong/drug/info/zocor/drug-interactions'),
  -- I-2, I-3
  ('ingredient', 'simvastatin', 'Simvastatin', 'ingredient', 'amiodaron', 'Amiodaron', 'major',
   'Amiodarone raises simvastatin levels: higher risk of myopathy.',
   'Keep simvastatin within the labelled maximum dose for this combination (20 mg/day); watch for muscle pain.',
   'spec §8.3 I-2; simvastatin (Zocor) labelling: https://uat.mimsdev.com/hongkong/drug/info/zocor/drug-interactions'),
  ('ingredient', 'simvastatin', 'Simvastatin', 'ingredient', 'amlodipin', 'Amlodipin', 'moderate',
   'Amlodipine raises simvastatin levels: higher risk of myopathy.',
   'Do not exceed simvastatin 20 mg/day with amlodipine.',
   'spec §8.3 I-3; labelling text: http://www.120ty.net/bencandy.php?aid=48315&fid=134&page=33'),
  -- I-4, I-5 tizanidine × CYP1A2 inhibitors
  ('ingredient', 'tizanidin', 'Tizanidin', 'ingredient', 'ciprofloxacin', 'Ciprofloxacin', 'contraindicated',
   'Ciprofloxacin (CYP1A2 inhibitor) raises tizanidine exposure about tenfold: severe hypotension and sedation.',
   'Do not combine.',
   'spec §8.3 I-4; tizanidine (Zanaflex) labelling: https://www.healthgrades.com/drugs/zanaflex/interactions'),
  ('ingredient', 'tizanidin', 'Tizanidin', 'ingredient', 'amiodaron', 'Amiodaron', 'major',
   'CYP1A2 inhibition raises tizanidine exposure: hypotension, bradycardia, sedation.',
   'Avoid; if unavoidable start tizanidine at 2 mg and titrate with blood-pressure checks.',
   'spec §8.3 I-5; tizanidine (Zanaflex) labelling: https://www.healthgrades.com/drugs/zanaflex/interactions'),
  ('ingredient', 'tizanidin', 'Tizanidin', 'ingredient', 'famotidin', 'Famotidin', 'major',
   'CYP1A2 inhibition raises tizanidine exposure: hypotension, bradycardia, sedation.',
   'Avoid; if unavoidable start tizanidine at 2 mg and titrate with blood-pressure checks.',
   'spec §8.3 I-5; tizanidine (Zanaflex) labelling: https://www.healthgrades.com/drugs/zanaflex/interactions'),
  ('ingredient', 'tizanidin', 'Tizanidin', 'atc_class', 'G03A', 'Hormonal contraceptives (G03A)', 'major',
   'Oral contraceptives inhibit CYP1A2 and raise tizanidine exposure: hypotension, sedation.',
   'Avoid; if unavoidable start tizanidine at 2 mg and titrate.',
   'spec §8.3 I-5; tizanidine (Zanaflex) labelling: https://www.healthgrades.com/drugs/zanaflex/interactions'),
  -- I-6 PDE5 inhibitor × organic nitrates
  ('ingredient', 'sildenafil', 'Sildenafil', 'atc_class', 'C01DA', 'Organic nitrates (C01DA)', 'contraindicated',
   'Additive vasodilation: severe, possibly fatal hypotension.',
   'Never combine; no nitrate within 24 hours of sildenafil.',
   'spec §8.3 I-6; sildenafil (Viagra) contraindications: https://wikidoc.org./index.php?diff=next&oldid=953441&title=Sildenafil_contraindications ; FDA Nitrostat labelling: http://www.fda.gov/Safety/MedWatch/SafetyInformation/ucm266664.htm'),
  -- I-7
  ('ingredient', 'colchicin', 'Colchicin', 'ingredient', 'clarithromycin', 'Clarithromycin', 'contraindicated',
   'Clarithromycin blocks P-gp and CYP3A4: colchicine accumulates; fatal toxicity has been reported.',
   'Do not combine in renal or hepatic impairment; otherwise avoid or reduce the colchicine dose sharply.',
   'spec §8.3 I-7; colchicine labelling: http://colchicine.institute/index.html ; https://pmc.ncbi.nlm.nih.gov/articles/PMC9754312/table/Tab3'),
  -- I-8, I-9 domperidone × CYP3A4 inhibitors and QT-prolonging drugs
  ('ingredient', 'domperidon', 'Domperidon', 'ingredient', 'clarithromycin', 'Clarithromycin', 'contraindicated',
   'Potent CYP3A4 inhibition raises domperidone levels; both prolong QT: ventricular arrhythmia.',
   'Do not combine.',
   'spec §8.3 I-8; EMA/CMDh 2014: https://www.ema.europa.eu/en/news/cmdh-confirms-recommendations-restricting-use-domperidone-containing-medicines'),
  ('ingredient', 'domperidon', 'Domperidon', 'ingredient', 'fluconazol', 'Fluconazol', 'contraindicated',
   'CYP3A4 inhibition raises domperidone levels; both prolong QT: ventricular arrhythmia.',
   'Do not combine.',
   'spec §8.3 I-8; EMA/CMDh 2014: https://www.ema.europa.eu/en/news/cmdh-confirms-recommendations-restricting-use-domperidone-containing-medicines ; SA MCC 2015: https://mic.uct.ac.za/articles/2015-03-03-domperidone-important-safety-information-mcc'),
  ('ingredient', 'domperidon', 'Domperidon', 'ingredient', 'amiodaron', 'Amiodaron', 'contraindicated',
   'Both prolong the QT interval: ventricular arrhythmia.',
   'Do not combine.',
   'spec §8.3 I-9; EMA/CMDh 2014: https://www.ema.europa.eu/en/news/cmdh-confirms-recommendations-restricting-use-domperidone-containing-medicines'),
  -- I-10, I-11
  ('ingredient', 'methotrexat', 'Methotrexat', 'ingredient', 'trimethoprim', 'Trimethoprim (also in co-trimoxazole)', 'major',
   'Additive antifolate effect and reduced methotrexate clearance: severe, sometimes fatal bone-marrow suppression.',
   'Avoid the combination.',
   'spec §8.3 I-10; Medsafe Prescriber Update March 2022: https://medsafe.govt.nz/profs/PUArticles/March2022/Bone-marrow-suppression-methotrexate-and-trimethoprim-or-co-trimoxazole.html'),
  ('ingredient', 'azathioprin', 'Azathioprin', 'ingredient', 'allopurinol', 'Allopurinol', 'major',
   'Allopurinol blocks xanthine oxidase, which clears azathioprine: life-threatening myelosuppression.',
   'Avoid; if unavoidable give one quarter of the azathioprine dose and monitor blood counts.',
   'spec §8.3 I-11; Medsafe Prescriber Update September 2020: https://medsafe.govt.nz/profs/PUArticles/September2020/Allopurinol-life-threatening-interaction-azathioprine-mercaptopurine.html'),
  -- I-12 .. I-16 warfarin
  ('ingredient', 'warfarin', 'Warfarin', 'ingredient', 'fluconazol', 'Fluconazol', 'major',
   'CYP2C9 inhibition raises warfarin levels: INR rises, bleeding.',
   'Avoid or reduce the warfarin dose and check the INR within a few days.',
   'spec §8.3 I-12; https://www.joinrounds.com/app/articles/drug-interactions-with-warfarin-to-watch-for-4/'),
  ('ingredient', 'warfarin', 'Warfarin', 'ingredient', 'metronidazol', 'Metronidazol', 'major',
   'Metronidazole inhibits warfarin metabolism: INR rises sharply (a case with INR 13.7), bleeding.',
   'Avoid or reduce the warfarin dose and check the INR within a few days.',
   'spec §8.3 I-13; https://www.joinrounds.com/app/articles/drug-interactions-with-warfarin-to-watch-for-4/ ; https://aseestant.ceon.rs/index.php/arhfarm/article/view/38605'),
  ('ingredient', 'warfarin', 'Warfarin', 'ingredient', 'sulfamethoxazol', 'Sulfamethoxazol (co-trimoxazole)', 'major',
   'Co-trimoxazole inhibits warfarin metabolism: INR rises, bleeding.',
   'Avoid or reduce the warfarin dose and check the INR within a few days.',
   'spec §8.3 I-14; https://www.joinrounds.com/app/articles/drug-interactions-with-warfarin-to-watch-for-4/'),
  ('ingredient', 'warfarin', 'Warfarin', 'ingredient', 'amiodaron', 'Amiodaron', 'major',
   'Amiodarone inhibits warfarin metabolism for weeks to months: INR rises, bleeding.',
   'Reduce the warfarin dose and monitor the INR closely.',
   'spec §8.3 I-15; https://www.joinrounds.com/app/articles/drug-interactions-with-warfarin-to-watch-for-4/'),
  ('ingredient', 'warfarin', 'Warfarin', 'ingredient', 'acid acetylsalicylic', 'Aspirin', 'major',
   'Antiplatelet effect adds to anticoagulation: bleeding risk rises.',
   'Combine only with a clear indication; watch for bleeding.',
   'spec §8.3 I-16; https://www.joinrounds.com/app/articles/drug-interactions-with-warfarin-to-watch-for-4/ ; clinical-ddi-check data row aspirin-warfarin "major"'),
  ('ingredient', 'warfarin', 'Warfarin', 'atc_class', 'M01A', 'NSAIDs (M01A)', 'major',
   'NSAIDs impair platelets and injure the gastric mucosa: bleeding risk rises.',
   'Avoid; prefer paracetamol for pain.',
   'spec §8.3 I-16; https://www.joinrounds.com/app/articles/drug-interactions-with-warfarin-to-watch-for-4/'),
  -- I-17
  ('ingredient', 'clopidogrel', 'Clopidogrel', 'ingredient', 'omeprazol', 'Omeprazol', 'major',
   'CYP2C19 inhibition cuts clopidogrel''s active metabolite by about 45 %: less protection against thrombosis.',
   'Avoid; if a PPI is needed, pantoprazole is preferred.',
   'spec §8.3 I-17; FDA communication 17/11/2009: http://www.nabp.net/news/fda-reminds-patients-to-avoid-using-plavix-and-omeprazole-at-the-same-time'),
  ('ingredient', 'clopidogrel', 'Clopidogrel', 'ingredient', 'esomeprazol', 'Esomeprazol', 'major',
   'CYP2C19 inhibition cuts clopidogrel''s active metabolite: less protection against thrombosis.',
   'Avoid; if a PPI is needed, pantoprazole is preferred.',
   'spec §8.3 I-17; FDA communication 17/11/2009: http://www.nabp.net/news/fda-reminds-patients-to-avoid-using-plavix-and-omeprazole-at-the-same-time'),
  -- I-18
  ('atc_class', 'N02A', 'Opioids (N02A)', 'atc_class', 'N05BA', 'Benzodiazepines (N05BA)', 'major',
   'Additive CNS depression: profound sedation, respiratory depression, coma and death (boxed warning).',
   'Combine only when alternatives are inadequate, at the lowest doses and shortest duration; warn the patient.',
   'spec §8.3 I-18; FDA Drug Safety Communication 31/08/2016: https://www.fda.gov/Drugs/DrugSafety/ucm518473.htm'),
  -- I-19, I-21 renin-angiotensin system × potassium
  ('atc_class', 'C09A', 'ACE inhibitors (C09A)', 'ingredient', 'spironolacton', 'Spironolacton', 'major',
   'Both raise serum potassium: hyperkalaemia.',
   'Monitor potassium and creatinine; avoid in renal impairment.',
   'spec §8.3 I-19; DDInter record (fact only): https://ddinter2.scbdd.com/server/interact/59395 ; Horn & Hansten: https://docslib.org/doc/7417948/hyperkalemia-due-to-drug-interactions'),
  ('atc_class', 'C09C', 'Angiotensin II receptor blockers (C09C)', 'ingredient', 'spironolacton', 'Spironolacton', 'major',
   'Both raise serum potassium: hyperkalaemia.',
   'Monitor potassium and creatinine; avoid in renal impairment.',
   'spec §8.3 I-19; DDInter record (fact only): https://ddinter2.scbdd.com/server/interact/59395 ; Horn & Hansten: https://docslib.org/doc/7417948/hyperkalemia-due-to-drug-interactions'),
  ('atc_class', 'C09A', 'ACE inhibitors (C09A)', 'atc_class', 'A12BA', 'Potassium supplements (A12BA)', 'moderate',
   'ACE inhibitors retain potassium: hyperkalaemia with supplements.',
   'Check potassium before and during the combination.',
   'spec §8.3 I-21; clinical-ddi-check 0.1.0 data (Apache-2.0); DDInter record (fact only): https://ddinter2.scbdd.com/server/interact/59395'),
  -- I-20
  ('ingredient', 'acid acetylsalicylic', 'Aspirin', 'ingredient', 'ibuprofen', 'Ibuprofen', 'moderate',
   'Additive effect on platelets and gastric mucosa: bleeding risk rises.',
   'Avoid regular use together; if needed, take aspirin well before ibuprofen.',
   'spec §8.3 I-20; clinical-ddi-check 0.1.0 data (Apache-2.0)'),
  -- I-23 high-priority class pairs (ONC list themes; membership per a third-party implementation, spec §9 U-15)
  ('atc_class', 'N06AF', 'Non-selective MAO inhibitors (N06AF)', 'atc_class', 'N06AB', 'SSRIs (N06AB)', 'contraindicated',
   'Serotonin syndrome.', 'Do not combine; respect the washout period when switching.',
   'spec §8.3 I-23; Phansalkar et al., JAMIA 2012;19(5):735-43: https://pubmed.ncbi.nlm.nih.gov/22539083/'),
  ('atc_class', 'N06AF', 'Non-selective MAO inhibitors (N06AF)', 'atc_class', 'N06AA', 'Tricyclic antidepressants (N06AA)', 'contraindicated',
   'Serotonin syndrome and hypertensive reactions.', 'Do not combine; respect the washout period when switching.',
   'spec §8.3 I-23; Phansalkar et al., JAMIA 2012;19(5):735-43: https://pubmed.ncbi.nlm.nih.gov/22539083/'),
  ('atc_class', 'N06AF', 'Non-selective MAO inhibitors (N06AF)', 'atc_class', 'N02CC', 'Triptans (N02CC)', 'contraindicated',
   'Triptan levels rise; serotonin syndrome.', 'Do not combine.',
   'spec §8.3 I-23; Phansalkar et al., JAMIA 2012;19(5):735-43: https://pubmed.ncbi.nlm.nih.gov/22539083/'),
  ('atc_class', 'N06AF', 'Non-selective MAO inhibitors (N06AF)', 'atc_class', 'N02A', 'Opioids (N02A)', 'contraindicated',
   'Serotonin syndrome or CNS depression, depending on the opioid.', 'Do not combine.',
   'spec §8.3 I-23; Phansalkar et al., JAMIA 2012;19(5):735-43: https://pubmed.ncbi.nlm.nih.gov/22539083/'),
  ('atc_class', 'N02CA', 'Ergot alkaloids (N02CA)', 'ingredient', 'clarithromycin', 'Clarithromycin', 'contraindicated',
   'Strong CYP3A4 inhibition raises ergot levels: ergotism, vasospasm, ischaemia.', 'Do not combine.',
   'spec §8.3 I-23; Phansalkar et al., JAMIA 2012;19(5):735-43: https://pubmed.ncbi.nlm.nih.gov/22539083/'),
  ('atc_class', 'N02CA', 'Ergot alkaloids (N02CA)', 'ingredient', 'erythromycin', 'Erythromycin', 'contraindicated',
   'Strong CYP3A4 inhibition raises ergot levels: ergotism, vasospasm, ischaemia.', 'Do not combine.',
   'spec §8.3 I-23; Phansalkar et al., JAMIA 2012;19(5):735-43: https://pubmed.ncbi.nlm.nih.gov/22539083/'),
  ('atc_class', 'N02CA', 'Ergot alkaloids (N02CA)', 'ingredient', 'ketoconazol', 'Ketoconazol', 'contraindicated',
   'Strong CYP3A4 inhibition raises ergot levels: ergotism, vasospasm, ischaemia.', 'Do not combine.',
   'spec §8.3 I-23; Phansalkar et al., JAMIA 2012;19(5):735-43: https://pubmed.ncbi.nlm.nih.gov/22539083/'),
  ('atc_class', 'N02CA', 'Ergot alkaloids (N02CA)', 'ingredient', 'itraconazol', 'Itraconazol', 'contraindicated',
   'Strong CYP3A4 inhibition raises ergot levels: ergotism, vasospasm, ischaemia.', 'Do not combine.',
   'spec §8.3 I-23; Phansalkar et al., JAMIA 2012;19(5):735-43: https://pubmed.ncbi.nlm.nih.gov/22539083/'),
  ('ingredient', 'atazanavir', 'Atazanavir', 'atc_class', 'A02BC', 'Proton-pump inhibitors (A02BC)', 'contraindicated',
   'Atazanavir needs gastric acid to be absorbed: its levels fall and the virus may become resistant.',
   'Do not combine.',
   'spec §8.3 I-23; Phansalkar et al., JAMIA 2012;19(5):735-43: https://pubmed.ncbi.nlm.nih.gov/22539083/'),
  ('ingredient', 'febuxostat', 'Febuxostat', 'ingredient', 'azathioprin', 'Azathioprin', 'contraindicated',
   'Xanthine-oxidase inhibition blocks thiopurine clearance: severe myelosuppression.', 'Do not combine.',
   'spec §8.3 I-23; Phansalkar et al., JAMIA 2012;19(5):735-43: https://pubmed.ncbi.nlm.nih.gov/22539083/'),
  ('ingredient', 'febuxostat', 'Febuxostat', 'ingredient', 'mercaptopurin', 'Mercaptopurin', 'contraindicated',
   'Xanthine-oxidase inhibition blocks thiopurine clearance: severe myelosuppression.', 'Do not combine.',
   'spec §8.3 I-23; Phansalkar et al., JAMIA 2012;19(5):735-43: https://pubmed.ncbi.nlm.nih.gov/22539083/')
) AS seed (a_kind, a_code, a_label, b_kind, b_code, b_label, severity, effect, advice, ref);
