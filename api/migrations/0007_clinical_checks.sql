-- Clinical decision support at prescribe time (issue 4, spec §8 CDS-1..CDS-5): Vietnamese texts for the interaction
-- rules (doctors read Vietnamese), the allergy vocabulary and class cross-reactivity table (CDS-2), paediatric mg/kg
-- dose limits (CDS-4) and the teratogenic risks behind the catalogue's pregnancy flags (CDS-5).

-- ------------------------------------------------------------------------------- CDS-1: interaction texts in Vietnamese

ALTER TABLE drug_interactions ADD COLUMN effect_vi text, ADD COLUMN advice_vi text;

UPDATE drug_interactions i SET effect_vi = v.effect_vi, advice_vi = v.advice_vi
FROM (VALUES
  -- I-1
  ('ingredient', 'simvastatin', 'ingredient', 'clarithromycin',
   'Chất ức chế mạnh CYP3A4 làm nồng độ simvastatin trong máu tăng nhiều lần: nguy cơ bệnh cơ và tiêu cơ vân.',
   'Không phối hợp; tạm ngừng simvastatin trong suốt đợt kháng sinh hoặc chọn kháng sinh khác.'),
  ('ingredient', 'simvastatin', 'ingredient', 'erythromycin',
   'Chất ức chế mạnh CYP3A4 làm nồng độ simvastatin trong máu tăng nhiều lần: nguy cơ bệnh cơ và tiêu cơ vân.',
   'Không phối hợp; tạm ngừng simvastatin trong suốt đợt kháng sinh hoặc chọn kháng sinh khác.'),
  ('ingredient', 'simvastatin', 'ingredient', 'itraconazol',
   'Chất ức chế mạnh CYP3A4 làm nồng độ simvastatin trong máu tăng nhiều lần: nguy cơ bệnh cơ và tiêu cơ vân.',
   'Không phối hợp; tạm ngừng simvastatin trong thời gian dùng thuốc chống nấm.'),
  ('ingredient', 'simvastatin', 'ingredient', 'ketoconazol',
   'Chất ức chế mạnh CYP3A4 làm nồng độ simvastatin trong máu tăng nhiều lần: nguy cơ bệnh cơ và tiêu cơ vân.',
   'Không phối hợp; tạm ngừng simvastatin trong thời gian dùng thuốc chống nấm.'),
  ('ingredient', 'simvastatin', 'ingredient', 'posaconazol',
   'Chất ức chế mạnh CYP3A4 làm nồng độ simvastatin trong máu tăng nhiều lần: nguy cơ bệnh cơ và tiêu cơ vân.',
   'Không phối hợp; tạm ngừng simvastatin trong thời gian dùng thuốc chống nấm.'),
  ('ingredient', 'simvastatin', 'ingredient', 'voriconazol',
   'Chất ức chế mạnh CYP3A4 làm nồng độ simvastatin trong máu tăng nhiều lần: nguy cơ bệnh cơ và tiêu cơ vân.',
   'Không phối hợp; tạm ngừng simvastatin trong thời gian dùng thuốc chống nấm.'),
  ('ingredient', 'simvastatin', 'atc_class', 'J05AE',
   'Thuốc ức chế protease HIV ức chế mạnh CYP3A4, làm nồng độ simvastatin tăng nhiều lần: nguy cơ bệnh cơ và tiêu cơ vân.',
   'Không phối hợp; chọn statin không chuyển hoá qua CYP3A4.'),
  -- I-2, I-3
  ('ingredient', 'simvastatin', 'ingredient', 'amiodaron',
   'Amiodaron làm tăng nồng độ simvastatin: tăng nguy cơ bệnh cơ.',
   'Không dùng simvastatin quá liều tối đa ghi trên nhãn cho phối hợp này (20 mg/ngày); dặn người bệnh báo ngay khi '
   'đau hoặc yếu cơ.'),
  ('ingredient', 'simvastatin', 'ingredient', 'amlodipin',
   'Amlodipin làm tăng nồng độ simvastatin: tăng nguy cơ bệnh cơ.',
   'Không dùng simvastatin quá 20 mg/ngày khi phối hợp với amlodipin.'),
  -- I-4, I-5
  ('ingredient', 'tizanidin', 'ingredient', 'ciprofloxacin',
   'Ciprofloxacin ức chế CYP1A2, làm nồng độ tizanidin tăng khoảng 10 lần: hạ huyết áp nặng, buồn ngủ, an thần quá mức.',
   'Không phối hợp.'),
  ('ingredient', 'tizanidin', 'ingredient', 'amiodaron',
   'Ức chế CYP1A2 làm tăng nồng độ tizanidin: hạ huyết áp, nhịp tim chậm, an thần.',
   'Tránh phối hợp; nếu bắt buộc, khởi đầu tizanidin 2 mg, tăng liều dần và theo dõi huyết áp.'),
  ('ingredient', 'tizanidin', 'ingredient', 'famotidin',
   'Ức chế CYP1A2 làm tăng nồng độ tizanidin: hạ huyết áp, nhịp tim chậm, an thần.',
   'Tránh phối hợp; nếu bắt buộc, khởi đầu tizanidin 2 mg, tăng liều dần và theo dõi huyết áp.'),
  ('ingredient', 'tizanidin', 'atc_class', 'G03A',
   'Thuốc tránh thai nội tiết ức chế CYP1A2, làm tăng nồng độ tizanidin: hạ huyết áp, an thần.',
   'Tránh phối hợp; nếu bắt buộc, khởi đầu tizanidin 2 mg và tăng liều dần.'),
  -- I-6
  ('ingredient', 'sildenafil', 'atc_class', 'C01DA',
   'Cộng hợp tác dụng giãn mạch: hạ huyết áp nặng, có thể tử vong.',
   'Tuyệt đối không phối hợp; không dùng nitrat trong vòng 24 giờ sau khi uống sildenafil.'),
  -- I-7
  ('ingredient', 'colchicin', 'ingredient', 'clarithromycin',
   'Clarithromycin ức chế P-gp và CYP3A4 nên colchicin tích luỹ; đã có báo cáo ngộ độc colchicin gây tử vong.',
   'Không phối hợp ở người suy thận hoặc suy gan; với người bệnh khác, tránh phối hợp hoặc giảm mạnh liều colchicin.'),
  -- I-8, I-9
  ('ingredient', 'domperidon', 'ingredient', 'clarithromycin',
   'Ức chế mạnh CYP3A4 làm tăng nồng độ domperidon; cả hai thuốc đều kéo dài khoảng QT: nguy cơ loạn nhịp thất.',
   'Không phối hợp.'),
  ('ingredient', 'domperidon', 'ingredient', 'fluconazol',
   'Ức chế CYP3A4 làm tăng nồng độ domperidon; cả hai thuốc đều kéo dài khoảng QT: nguy cơ loạn nhịp thất.',
   'Không phối hợp.'),
  ('ingredient', 'domperidon', 'ingredient', 'amiodaron',
   'Cả hai thuốc đều kéo dài khoảng QT: nguy cơ loạn nhịp thất.',
   'Không phối hợp.'),
  -- I-10, I-11
  ('ingredient', 'methotrexat', 'ingredient', 'trimethoprim',
   'Cộng hợp tác dụng kháng folat và giảm thải trừ methotrexat: ức chế tuỷ xương nặng, có khi tử vong.',
   'Tránh phối hợp.'),
  ('ingredient', 'azathioprin', 'ingredient', 'allopurinol',
   'Allopurinol ức chế xanthin oxidase, enzym chuyển hoá azathioprin: ức chế tuỷ xương đe doạ tính mạng.',
   'Tránh phối hợp; nếu bắt buộc, giảm liều azathioprin còn một phần tư và theo dõi công thức máu.'),
  -- I-12 .. I-16
  ('ingredient', 'warfarin', 'ingredient', 'fluconazol',
   'Fluconazol ức chế CYP2C9, làm tăng nồng độ warfarin: INR tăng, nguy cơ chảy máu.',
   'Tránh phối hợp, hoặc giảm liều warfarin và kiểm tra INR trong vài ngày đầu.'),
  ('ingredient', 'warfarin', 'ingredient', 'metronidazol',
   'Metronidazol ức chế chuyển hoá warfarin: INR tăng mạnh (đã có ca INR 13,7), nguy cơ chảy máu.',
   'Tránh phối hợp, hoặc giảm liều warfarin và kiểm tra INR trong vài ngày đầu.'),
  ('ingredient', 'warfarin', 'ingredient', 'sulfamethoxazol',
   'Co-trimoxazol ức chế chuyển hoá warfarin: INR tăng, nguy cơ chảy máu.',
   'Tránh phối hợp, hoặc giảm liều warfarin và kiểm tra INR trong vài ngày đầu.'),
  ('ingredient', 'warfarin', 'ingredient', 'amiodaron',
   'Amiodaron ức chế chuyển hoá warfarin, tác dụng kéo dài nhiều tuần đến nhiều tháng: INR tăng, nguy cơ chảy máu.',
   'Giảm liều warfarin và theo dõi INR chặt chẽ.'),
  ('ingredient', 'warfarin', 'ingredient', 'acid acetylsalicylic',
   'Tác dụng chống kết tập tiểu cầu cộng thêm vào tác dụng chống đông: tăng nguy cơ chảy máu.',
   'Chỉ phối hợp khi có chỉ định rõ ràng; theo dõi dấu hiệu chảy máu.'),
  ('ingredient', 'warfarin', 'atc_class', 'M01A',
   'NSAID ức chế tiểu cầu và gây tổn thương niêm mạc dạ dày: tăng nguy cơ chảy máu.',
   'Tránh phối hợp; ưu tiên paracetamol để giảm đau.'),
  -- I-17
  ('ingredient', 'clopidogrel', 'ingredient', 'omeprazol',
   'Omeprazol ức chế CYP2C19, làm giảm khoảng 45 % chất chuyển hoá có hoạt tính của clopidogrel: giảm tác dụng '
   'phòng huyết khối.',
   'Tránh phối hợp; nếu cần thuốc ức chế bơm proton, ưu tiên pantoprazol.'),
  ('ingredient', 'clopidogrel', 'ingredient', 'esomeprazol',
   'Esomeprazol ức chế CYP2C19, làm giảm chất chuyển hoá có hoạt tính của clopidogrel: giảm tác dụng phòng huyết khối.',
   'Tránh phối hợp; nếu cần thuốc ức chế bơm proton, ưu tiên pantoprazol.'),
  -- I-18
  ('atc_class', 'N02A', 'atc_class', 'N05BA',
   'Cộng hợp ức chế thần kinh trung ương: an thần sâu, suy hô hấp, hôn mê và tử vong (cảnh báo đóng khung).',
   'Chỉ phối hợp khi không có lựa chọn thay thế phù hợp, với liều thấp nhất và thời gian ngắn nhất; dặn người bệnh '
   'và người nhà các dấu hiệu nguy hiểm.'),
  -- I-19, I-21
  ('atc_class', 'C09A', 'ingredient', 'spironolacton',
   'Cả hai thuốc đều giữ kali: nguy cơ tăng kali máu.',
   'Theo dõi kali và creatinin máu; tránh phối hợp ở người suy thận.'),
  ('atc_class', 'C09C', 'ingredient', 'spironolacton',
   'Cả hai thuốc đều giữ kali: nguy cơ tăng kali máu.',
   'Theo dõi kali và creatinin máu; tránh phối hợp ở người suy thận.'),
  ('atc_class', 'C09A', 'atc_class', 'A12BA',
   'Thuốc ức chế men chuyển giữ kali: tăng kali máu khi bổ sung kali.',
   'Kiểm tra kali máu trước và trong khi phối hợp.'),
  -- I-20
  ('ingredient', 'acid acetylsalicylic', 'ingredient', 'ibuprofen',
   'Cộng hợp tác dụng lên tiểu cầu và niêm mạc dạ dày: tăng nguy cơ chảy máu.',
   'Tránh dùng thường xuyên cùng nhau; nếu cần, uống aspirin trước ibuprofen một khoảng thời gian đủ dài.'),
  -- I-23
  ('atc_class', 'N06AF', 'atc_class', 'N06AB',
   'Hội chứng serotonin.',
   'Không phối hợp; tôn trọng thời gian thải trừ thuốc khi chuyển từ thuốc này sang thuốc kia.'),
  ('atc_class', 'N06AF', 'atc_class', 'N06AA',
   'Hội chứng serotonin và cơn tăng huyết áp.',
   'Không phối hợp; tôn trọng thời gian thải trừ thuốc khi chuyển từ thuốc này sang thuốc kia.'),
  ('atc_class', 'N06AF', 'atc_class', 'N02CC',
   'Nồng độ triptan tăng; hội chứng serotonin.',
   'Không phối hợp.'),
  ('atc_class', 'N06AF', 'atc_class', 'N02A',
   'Hội chứng serotonin hoặc ức chế thần kinh trung ương, tuỳ loại opioid.',
   'Không phối hợp.'),
  ('atc_class', 'N02CA', 'ingredient', 'clarithromycin',
   'Ức chế mạnh CYP3A4 làm tăng nồng độ alcaloid nấm cựa gà: ngộ độc nấm cựa gà, co thắt mạch, thiếu máu chi.',
   'Không phối hợp.'),
  ('atc_class', 'N02CA', 'ingredient', 'erythromycin',
   'Ức chế mạnh CYP3A4 làm tăng nồng độ alcaloid nấm cựa gà: ngộ độc nấm cựa gà, co thắt mạch, thiếu máu chi.',
   'Không phối hợp.'),
  ('atc_class', 'N02CA', 'ingredient', 'ketoconazol',
   'Ức chế mạnh CYP3A4 làm tăng nồng độ alcaloid nấm cựa gà: ngộ độc nấm cựa gà, co thắt mạch, thiếu máu chi.',
   'Không phối hợp.'),
  ('atc_class', 'N02CA', 'ingredient', 'itraconazol',
   'Ức chế mạnh CYP3A4 làm tăng nồng độ alcaloid nấm cựa gà: ngộ độc nấm cựa gà, co thắt mạch, thiếu máu chi.',
   'Không phối hợp.'),
  ('ingredient', 'atazanavir', 'atc_class', 'A02BC',
   'Atazanavir cần acid dịch vị để hấp thu: nồng độ atazanavir giảm, virus có thể kháng thuốc.',
   'Không phối hợp.'),
  ('ingredient', 'febuxostat', 'ingredient', 'azathioprin',
   'Ức chế xanthin oxidase làm thiopurin không được thải trừ: ức chế tuỷ xương nặng.',
   'Không phối hợp.'),
  ('ingredient', 'febuxostat', 'ingredient', 'mercaptopurin',
   'Ức chế xanthin oxidase làm thiopurin không được thải trừ: ức chế tuỷ xương nặng.',
   'Không phối hợp.')
) AS v (a_kind, a_code, b_kind, b_code, effect_vi, advice_vi)
WHERE (i.a_kind, i.a_code, i.b_kind, i.b_code) = (v.a_kind, v.a_code, v.b_kind, v.b_code);

-- A rule added to a database by hand, outside the seed, keeps its English text until someone translates it: the
-- doctor still sees the warning, and this migration still applies there.
UPDATE drug_interactions SET effect_vi = effect WHERE effect_vi IS NULL;
UPDATE drug_interactions SET advice_vi = advice WHERE advice_vi IS NULL;
ALTER TABLE drug_interactions
  ALTER COLUMN effect_vi SET NOT NULL,
  ALTER COLUMN advice_vi SET NOT NULL,
  ADD CONSTRAINT effect_vi_length CHECK (length(effect_vi) BETWEEN 1 AND 1000),
  ADD CONSTRAINT advice_vi_length CHECK (length(advice_vi) BETWEEN 1 AND 1000);

-- ------------------------------------------------------------------------------------ CDS-2: allergy vocabulary

-- What an allergy typed by a patient or a doctor is compared by. Folding alone does not make "Penicillin",
-- "penicilin" (Vietnamese usage), "amoxicilline" (French) or "acetylsalicylic acid" meet the catalogue's
-- "acid acetylsalicylic", so the key also writes ph as f and ch as c, collapses doubled letters, drops a final e,
-- puts "acid" first as Vietnamese does, and drops words that only say "allergy to the group of". The same key is
-- applied to catalogue ingredients, so both sides are spelled alike; spellings it cannot reconcile ("acetaminophen")
-- are in allergy_synonyms.
CREATE FUNCTION allergy_key(substance text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
  RETURN regexp_replace(regexp_replace(regexp_replace(regexp_replace(
           replace(replace(
             btrim(regexp_replace(search_fold(replace(substance, 'β', 'beta ')), '[^a-z0-9]+', ' ', 'g')),
             'ph', 'f'), 'ch', 'c'),
           '([a-z])\1+', '\1', 'g'),
           '([a-z]{3,})e\M', '\1', 'g'),
           '^((di ung|nhom|thuoc|khang sinh) )+', ''),
           '^(.+) acid$', 'acid \1');

CREATE FUNCTION drug_allergy_keys(ingredients text[]) RETURNS text[]
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN ARRAY(SELECT allergy_key(i.name) FROM unnest(ingredients) WITH ORDINALITY AS i (name, n) ORDER BY i.n);

-- Stored, in the order of ingredients, so an allergy is compared with precomputed keys and "which catalogue drugs
-- contain what this patient is allergic to" is an index lookup, not a scan that recomputes keys.
ALTER TABLE drugs ADD COLUMN allergy_keys text[] NOT NULL GENERATED ALWAYS AS (drug_allergy_keys(ingredients)) STORED;
CREATE INDEX drugs_allergy_keys ON drugs USING gin (allergy_keys);

-- Spellings of catalogue ingredients that allergy_key() cannot reconcile; a term may stand for several ingredients
-- (co-trimoxazole).
CREATE TABLE allergy_synonyms (
  term        text NOT NULL CHECK (term = allergy_key(term) AND term <> ''),
  ingredient  text NOT NULL CHECK (ingredient = allergy_key(ingredient) AND ingredient <> ''),
  PRIMARY KEY (term, ingredient)
);
INSERT INTO allergy_synonyms (term, ingredient)
SELECT DISTINCT allergy_key(term), allergy_key(ingredient) FROM (VALUES
  ('acetaminophen', 'paracetamol'),
  ('amoxycillin', 'amoxicilin'),
  ('co-amoxiclav', 'amoxicilin'), ('co-amoxiclav', 'acid clavulanic'),
  ('co-trimoxazole', 'sulfamethoxazol'), ('co-trimoxazole', 'trimethoprim'),
  ('cotrimoxazole', 'sulfamethoxazol'), ('cotrimoxazole', 'trimethoprim'),
  ('acyclovir', 'aciclovir'),
  ('albuterol', 'salbutamol'),
  ('chlorpheniramine', 'clorphenamin'),
  ('methimazole', 'thiamazol'),
  ('nitroglycerin', 'glyceryl trinitrat'),
  ('valproate', 'acid valproic'), ('natri valproat', 'acid valproic'), ('sodium valproate', 'acid valproic')
) AS s (term, ingredient);

-- Drug classes an allergy may be recorded against, and what each implies for every catalogue drug (CDS-2). A class
-- is named by its terms; its members say, per ATC prefix or ingredient, how likely a reaction is and what to do.
CREATE TABLE allergy_classes (
  code        text PRIMARY KEY CHECK (code ~ '^[a-z_]{2,40}$'),
  label_vi    text NOT NULL CHECK (length(label_vi) BETWEEN 1 AND 200),
  source_ref  text NOT NULL CHECK (length(source_ref) BETWEEN 1 AND 1000)
);

CREATE TABLE allergy_class_terms (
  term        text PRIMARY KEY CHECK (term = allergy_key(term) AND term <> ''),  -- one meaning per spelling
  class_code  text NOT NULL REFERENCES allergy_classes (code)
);

-- A drug matched by several members of its class takes the most specific one (an ingredient, else the longest ATC
-- prefix), so a subgroup can carry an exception: aspirin allergy flags NSAIDs (M01A) but COX-2 inhibitors (M01AH)
-- less strongly.
CREATE TABLE allergy_class_members (
  class_code    text NOT NULL REFERENCES allergy_classes (code),
  kind          text NOT NULL CHECK (kind IN ('ingredient', 'atc_class')),
  code          text NOT NULL,
  severity      text NOT NULL CHECK (severity IN ('contraindicated', 'major', 'moderate', 'minor')),
  rationale_vi  text NOT NULL CHECK (length(rationale_vi) BETWEEN 1 AND 1000),  -- why the drug is at risk
  advice_vi     text NOT NULL CHECK (length(advice_vi) BETWEEN 1 AND 1000),     -- what the prescriber should do
  PRIMARY KEY (class_code, kind, code),
  CONSTRAINT code_form CHECK (CASE kind WHEN 'ingredient' THEN code = search_fold(code) AND code <> ''
                              ELSE code ~ '^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$' END)
);

INSERT INTO allergy_classes (code, label_vi, source_ref) VALUES
  ('penicillin', 'kháng sinh nhóm penicilin',
   'Khan DA et al. Drug allergy: a 2022 practice parameter update. J Allergy Clin Immunol 2022;150(6):1333-1393, '
   'doi:10.1016/j.jaci.2022.08.028 (penicillin and cephalosporin sections); class membership: WHO ATC/DDD index'),
  ('cephalosporin', 'kháng sinh nhóm cephalosporin',
   'Khan DA et al. J Allergy Clin Immunol 2022;150(6):1333-1393, doi:10.1016/j.jaci.2022.08.028 (cephalosporin '
   'section); class membership: WHO ATC/DDD index'),
  ('beta_lactam', 'kháng sinh beta-lactam (penicilin, cephalosporin, carbapenem, monobactam)',
   'Khan DA et al. J Allergy Clin Immunol 2022;150(6):1333-1393, doi:10.1016/j.jaci.2022.08.028; class membership: '
   'WHO ATC/DDD index (J01C, J01D)'),
  ('sulfonamide', 'kháng sinh nhóm sulfonamid (sulfamid)',
   'Khan DA et al. J Allergy Clin Immunol 2022;150(6):1333-1393 (sulfonamide section). Non-antibiotic sulfonamides '
   '(furosemide, thiazides, sulfonylureas, celecoxib) are deliberately not members: Strom BL et al. N Engl J Med '
   '2003;349(17):1628-35, PMID 14573734'),
  ('nsaid', 'thuốc chống viêm không steroid (NSAID)',
   'Khan DA et al. J Allergy Clin Immunol 2022;150(6):1333-1393 (aspirin and NSAID section); design (CDS-2): a '
   'named class is avoided whole; membership: WHO ATC M01A plus aspirin'),
  ('aspirin', 'aspirin (acid acetylsalicylic)',
   'Khan DA et al. J Allergy Clin Immunol 2022;150(6):1333-1393 (aspirin and NSAID section): cross-intolerance to '
   'COX-1 inhibiting NSAIDs; selective COX-2 inhibitors usually tolerated'),
  ('macrolide', 'kháng sinh nhóm macrolid',
   'Khan DA et al. J Allergy Clin Immunol 2022;150(6):1333-1393 (macrolide section); macrolide labelling: '
   'contraindicated in hypersensitivity to any macrolide; class membership: WHO ATC J01FA'),
  ('quinolone', 'kháng sinh nhóm quinolon',
   'Khan DA et al. J Allergy Clin Immunol 2022;150(6):1333-1393 (fluoroquinolone section); quinolone labelling: '
   'contraindicated in hypersensitivity to any quinolone; class membership: WHO ATC J01M'),
  ('tetracycline', 'kháng sinh nhóm tetracyclin',
   'Tetracycline labelling (e.g. doxycycline): contraindicated in hypersensitivity to any tetracycline; class '
   'membership: WHO ATC J01AA'),
  ('statin', 'thuốc hạ lipid máu nhóm statin',
   'Design (spec CDS-2): an allergy recorded against a named class is avoided whole; class membership: WHO ATC C10AA, '
   'C10B'),
  ('ace_inhibitor', 'thuốc ức chế men chuyển (ACE)',
   'ACE inhibitor labelling (e.g. enalapril): contraindicated after angioedema with any ACE inhibitor; ARBs: Haymore BR '
   'et al. Risk of angioedema with angiotensin receptor blockers in patients with prior angioedema associated with '
   'ACE inhibitors: a meta-analysis. Ann Allergy Asthma Immunol, November 2008'),
  ('arb', 'thuốc chẹn thụ thể angiotensin II (sartan)',
   'Design (spec CDS-2): an allergy recorded against a named class is avoided whole; class membership: WHO ATC C09C, '
   'C09D');

INSERT INTO allergy_class_terms (term, class_code)
SELECT DISTINCT allergy_key(term), class_code FROM (VALUES
  ('penicillin', 'penicillin'), ('penicillins', 'penicillin'), ('penicilin', 'penicillin'),
  ('penicilins', 'penicillin'), ('pénicilline', 'penicillin'), ('nhóm penicilin', 'penicillin'),
  ('kháng sinh nhóm penicillin', 'penicillin'),
  ('cephalosporin', 'cephalosporin'), ('cephalosporins', 'cephalosporin'), ('cefalosporin', 'cephalosporin'),
  ('céphalosporine', 'cephalosporin'), ('nhóm cephalosporin', 'cephalosporin'),
  ('beta-lactam', 'beta_lactam'), ('beta-lactams', 'beta_lactam'), ('betalactam', 'beta_lactam'),
  ('β-lactam', 'beta_lactam'), ('bêta-lactamine', 'beta_lactam'),
  ('sulfonamide', 'sulfonamide'), ('sulfonamides', 'sulfonamide'), ('sulphonamide', 'sulfonamide'),
  ('sulphonamides', 'sulfonamide'), ('sulfonamid', 'sulfonamide'), ('sulfamid', 'sulfonamide'),
  ('sulfamide', 'sulfonamide'), ('sulfamides', 'sulfonamide'), ('sunfamid', 'sulfonamide'), ('sulfa', 'sulfonamide'),
  ('sulfa drugs', 'sulfonamide'),
  ('nsaid', 'nsaid'), ('nsaids', 'nsaid'), ('ains', 'nsaid'), ('thuốc chống viêm không steroid', 'nsaid'),
  ('chống viêm không steroid', 'nsaid'), ('kháng viêm không steroid', 'nsaid'),
  ('thuốc kháng viêm không steroid', 'nsaid'), ('non-steroidal anti-inflammatory drugs', 'nsaid'),
  ('nonsteroidal anti-inflammatory drugs', 'nsaid'),
  ('aspirin', 'aspirin'), ('aspirine', 'aspirin'), ('acid acetylsalicylic', 'aspirin'),
  ('acetylsalicylic acid', 'aspirin'),
  ('macrolide', 'macrolide'), ('macrolides', 'macrolide'), ('macrolid', 'macrolide'), ('nhóm macrolid', 'macrolide'),
  ('quinolone', 'quinolone'), ('quinolones', 'quinolone'), ('quinolon', 'quinolone'),
  ('fluoroquinolone', 'quinolone'), ('fluoroquinolones', 'quinolone'), ('fluoroquinolon', 'quinolone'),
  ('tetracycline', 'tetracycline'), ('tetracyclines', 'tetracycline'), ('tetracyclin', 'tetracycline'),
  ('statin', 'statin'), ('statins', 'statin'), ('nhóm statin', 'statin'),
  ('ace inhibitor', 'ace_inhibitor'), ('ace inhibitors', 'ace_inhibitor'), ('acei', 'ace_inhibitor'),
  ('ức chế men chuyển', 'ace_inhibitor'), ('thuốc ức chế men chuyển', 'ace_inhibitor'), ('ucmc', 'ace_inhibitor'),
  ('arb', 'arb'), ('arbs', 'arb'), ('sartan', 'arb'), ('angiotensin receptor blocker', 'arb'),
  ('chẹn thụ thể angiotensin', 'arb'), ('ức chế thụ thể angiotensin', 'arb')
) AS t (term, class_code);

INSERT INTO allergy_class_members (class_code, kind, code, severity, rationale_vi, advice_vi) VALUES
  ('penicillin', 'atc_class', 'J01C', 'contraindicated',
   'Thuốc thuộc nhóm penicilin (ATC J01C), cùng nhóm với chất người bệnh đã dị ứng.',
   'Không kê; chọn kháng sinh không thuộc nhóm penicilin. Chỉ dùng lại khi tiền sử dị ứng đã được chuyên khoa dị ứng '
   'đánh giá lại.'),
  ('penicillin', 'atc_class', 'J01DB', 'moderate',
   'Cephalosporin: dị ứng chéo với penicilin thấp nhưng có thật, cao hơn khi hai thuốc có chuỗi bên giống nhau '
   '(ví dụ amoxicilin và cefadroxil).',
   'Có thể dùng nếu phản ứng cũ không phải phản vệ hay phản ứng da nặng; ưu tiên cephalosporin có chuỗi bên khác '
   'penicilin gây dị ứng, dặn người bệnh dấu hiệu dị ứng và theo dõi sau liều đầu.'),
  ('penicillin', 'atc_class', 'J01DC', 'moderate',
   'Cephalosporin: dị ứng chéo với penicilin thấp nhưng có thật, cao hơn khi hai thuốc có chuỗi bên giống nhau.',
   'Có thể dùng nếu phản ứng cũ không phải phản vệ hay phản ứng da nặng; ưu tiên cephalosporin có chuỗi bên khác '
   'penicilin gây dị ứng, dặn người bệnh dấu hiệu dị ứng và theo dõi sau liều đầu.'),
  ('penicillin', 'atc_class', 'J01DD', 'moderate',
   'Cephalosporin: dị ứng chéo với penicilin thấp nhưng có thật, cao hơn khi hai thuốc có chuỗi bên giống nhau.',
   'Có thể dùng nếu phản ứng cũ không phải phản vệ hay phản ứng da nặng; ưu tiên cephalosporin có chuỗi bên khác '
   'penicilin gây dị ứng, dặn người bệnh dấu hiệu dị ứng và theo dõi sau liều đầu.'),
  ('penicillin', 'atc_class', 'J01DE', 'moderate',
   'Cephalosporin: dị ứng chéo với penicilin thấp nhưng có thật, cao hơn khi hai thuốc có chuỗi bên giống nhau.',
   'Có thể dùng nếu phản ứng cũ không phải phản vệ hay phản ứng da nặng; ưu tiên cephalosporin có chuỗi bên khác '
   'penicilin gây dị ứng, dặn người bệnh dấu hiệu dị ứng và theo dõi sau liều đầu.'),
  ('penicillin', 'atc_class', 'J01DH', 'minor',
   'Carbapenem: dị ứng chéo với penicilin rất hiếm.',
   'Có thể dùng; theo dõi sau liều đầu.'),
  ('cephalosporin', 'atc_class', 'J01DB', 'contraindicated',
   'Thuốc thuộc nhóm cephalosporin, cùng nhóm với chất người bệnh đã dị ứng.',
   'Không kê; chọn kháng sinh nhóm khác, hoặc hỏi ý kiến chuyên khoa dị ứng về một cephalosporin có chuỗi bên khác.'),
  ('cephalosporin', 'atc_class', 'J01DC', 'contraindicated',
   'Thuốc thuộc nhóm cephalosporin, cùng nhóm với chất người bệnh đã dị ứng.',
   'Không kê; chọn kháng sinh nhóm khác, hoặc hỏi ý kiến chuyên khoa dị ứng về một cephalosporin có chuỗi bên khác.'),
  ('cephalosporin', 'atc_class', 'J01DD', 'contraindicated',
   'Thuốc thuộc nhóm cephalosporin, cùng nhóm với chất người bệnh đã dị ứng.',
   'Không kê; chọn kháng sinh nhóm khác, hoặc hỏi ý kiến chuyên khoa dị ứng về một cephalosporin có chuỗi bên khác.'),
  ('cephalosporin', 'atc_class', 'J01DE', 'contraindicated',
   'Thuốc thuộc nhóm cephalosporin, cùng nhóm với chất người bệnh đã dị ứng.',
   'Không kê; chọn kháng sinh nhóm khác, hoặc hỏi ý kiến chuyên khoa dị ứng về một cephalosporin có chuỗi bên khác.'),
  ('cephalosporin', 'atc_class', 'J01DI', 'contraindicated',
   'Thuốc thuộc nhóm cephalosporin, cùng nhóm với chất người bệnh đã dị ứng.',
   'Không kê; chọn kháng sinh nhóm khác, hoặc hỏi ý kiến chuyên khoa dị ứng về một cephalosporin có chuỗi bên khác.'),
  ('cephalosporin', 'atc_class', 'J01C', 'moderate',
   'Penicilin: dị ứng chéo với cephalosporin thấp nhưng có thật, cao hơn khi hai thuốc có chuỗi bên giống nhau.',
   'Có thể dùng nếu phản ứng cũ không phải phản vệ hay phản ứng da nặng; dặn người bệnh dấu hiệu dị ứng và theo dõi '
   'sau liều đầu.'),
  ('beta_lactam', 'atc_class', 'J01C', 'contraindicated',
   'Penicilin là kháng sinh beta-lactam.',
   'Không kê; chọn kháng sinh không thuộc nhóm beta-lactam.'),
  ('beta_lactam', 'atc_class', 'J01D', 'contraindicated',
   'Cephalosporin, carbapenem và monobactam là kháng sinh beta-lactam.',
   'Không kê; chọn kháng sinh không thuộc nhóm beta-lactam.'),
  ('sulfonamide', 'atc_class', 'J01EB', 'contraindicated',
   'Kháng sinh sulfonamid: cùng cấu trúc gây dị ứng với chất người bệnh đã dị ứng.',
   'Không kê; chọn kháng sinh nhóm khác.'),
  ('sulfonamide', 'atc_class', 'J01EC', 'contraindicated',
   'Kháng sinh sulfonamid: cùng cấu trúc gây dị ứng với chất người bệnh đã dị ứng.',
   'Không kê; chọn kháng sinh nhóm khác.'),
  ('sulfonamide', 'atc_class', 'J01ED', 'contraindicated',
   'Kháng sinh sulfonamid: cùng cấu trúc gây dị ứng với chất người bệnh đã dị ứng.',
   'Không kê; chọn kháng sinh nhóm khác.'),
  ('sulfonamide', 'atc_class', 'J01EE', 'contraindicated',
   'Thuốc phối hợp có kháng sinh sulfonamid (ví dụ sulfamethoxazol trong co-trimoxazol).',
   'Không kê; chọn kháng sinh nhóm khác.'),
  ('sulfonamide', 'ingredient', 'sulfasalazin', 'contraindicated',
   'Sulfasalazin giải phóng sulfapyridin, một sulfonamid kháng khuẩn.',
   'Không kê; trao đổi với chuyên khoa về thuốc thay thế.'),
  ('nsaid', 'atc_class', 'M01A', 'contraindicated',
   'Thuốc thuộc nhóm chống viêm không steroid (ATC M01A).',
   'Không kê; giảm đau bằng paracetamol nếu phù hợp.'),
  ('nsaid', 'ingredient', 'acid acetylsalicylic', 'contraindicated',
   'Aspirin ức chế COX-1 như các NSAID: phản ứng chéo thường gặp ở người không dung nạp NSAID.',
   'Không kê; nếu cần chống kết tập tiểu cầu, hỏi ý kiến chuyên khoa.'),
  ('aspirin', 'ingredient', 'acid acetylsalicylic', 'contraindicated',
   'Thuốc chứa acid acetylsalicylic (aspirin), chất người bệnh đã dị ứng.',
   'Không kê; nếu cần chống kết tập tiểu cầu, chọn thuốc nhóm khác.'),
  ('aspirin', 'atc_class', 'M01A', 'major',
   'NSAID ức chế COX-1 như aspirin: người không dung nạp aspirin thường phản ứng chéo với các NSAID này.',
   'Tránh dùng; giảm đau bằng paracetamol nếu phù hợp. Nếu vẫn cần NSAID, hỏi kỹ loại phản ứng cũ và cân nhắc '
   'thuốc ức chế chọn lọc COX-2.'),
  ('aspirin', 'atc_class', 'M01AH', 'moderate',
   'Thuốc ức chế chọn lọc COX-2 thường được dung nạp ở người không dung nạp aspirin, nhưng vẫn có thể phản ứng.',
   'Có thể dùng với liều đầu có theo dõi nếu phản ứng cũ không nặng; dặn người bệnh dấu hiệu dị ứng.'),
  ('macrolide', 'atc_class', 'J01FA', 'contraindicated',
   'Thuốc thuộc nhóm macrolid, cùng nhóm với chất người bệnh đã dị ứng.',
   'Không kê; chọn kháng sinh nhóm khác.'),
  ('quinolone', 'atc_class', 'J01M', 'contraindicated',
   'Thuốc thuộc nhóm quinolon, cùng nhóm với chất người bệnh đã dị ứng.',
   'Không kê; chọn kháng sinh nhóm khác.'),
  ('tetracycline', 'atc_class', 'J01AA', 'contraindicated',
   'Thuốc thuộc nhóm tetracyclin, cùng nhóm với chất người bệnh đã dị ứng.',
   'Không kê; chọn kháng sinh nhóm khác.'),
  ('statin', 'atc_class', 'C10AA', 'contraindicated',
   'Thuốc thuộc nhóm statin, cùng nhóm với chất người bệnh đã dị ứng.',
   'Không kê; chọn thuốc hạ lipid máu nhóm khác.'),
  ('statin', 'atc_class', 'C10B', 'contraindicated',
   'Thuốc phối hợp có chứa một statin.',
   'Không kê; chọn thuốc hạ lipid máu nhóm khác.'),
  ('ace_inhibitor', 'atc_class', 'C09A', 'contraindicated',
   'Thuốc thuộc nhóm ức chế men chuyển, cùng nhóm với thuốc người bệnh đã dị ứng (thường là phù mạch).',
   'Không kê; chọn thuốc hạ áp nhóm khác.'),
  ('ace_inhibitor', 'atc_class', 'C09B', 'contraindicated',
   'Thuốc phối hợp có chứa một thuốc ức chế men chuyển.',
   'Không kê; chọn thuốc hạ áp nhóm khác.'),
  ('ace_inhibitor', 'atc_class', 'C09C', 'moderate',
   'Người từng phù mạch do thuốc ức chế men chuyển có nguy cơ phù mạch khi dùng thuốc chẹn thụ thể angiotensin '
   '(khoảng vài phần trăm).',
   'Cân nhắc thuốc hạ áp nhóm khác; nếu vẫn dùng, dặn người bệnh dấu hiệu phù môi, lưỡi, họng và cách xử trí.'),
  ('ace_inhibitor', 'atc_class', 'C09D', 'moderate',
   'Người từng phù mạch do thuốc ức chế men chuyển có nguy cơ phù mạch khi dùng thuốc chẹn thụ thể angiotensin '
   '(khoảng vài phần trăm).',
   'Cân nhắc thuốc hạ áp nhóm khác; nếu vẫn dùng, dặn người bệnh dấu hiệu phù môi, lưỡi, họng và cách xử trí.'),
  ('arb', 'atc_class', 'C09C', 'contraindicated',
   'Thuốc thuộc nhóm chẹn thụ thể angiotensin II, cùng nhóm với thuốc người bệnh đã dị ứng.',
   'Không kê; chọn thuốc hạ áp nhóm khác.'),
  ('arb', 'atc_class', 'C09D', 'contraindicated',
   'Thuốc phối hợp có chứa một thuốc chẹn thụ thể angiotensin II.',
   'Không kê; chọn thuốc hạ áp nhóm khác.');

-- ------------------------------------------------------------------------------- CDS-4: paediatric dose limits

-- mg per kg of body weight, for patients younger than below_age_months. Only what a public source gives: the
-- paracetamol example of spec CDS-4. Every other paediatric range (ibuprofen, amoxicillin, ORS, zinc...) is unsourced
-- (spec §9 U-11) and is deliberately absent: an invented limit would be worse than none.
CREATE TABLE paediatric_dose_limits (
  ingredient          text PRIMARY KEY CHECK (ingredient = search_fold(ingredient) AND ingredient <> ''),
  min_mg_per_kg_dose  numeric CHECK (min_mg_per_kg_dose > 0),
  max_mg_per_kg_dose  numeric NOT NULL CHECK (max_mg_per_kg_dose > 0),
  max_mg_per_kg_day   numeric NOT NULL CHECK (max_mg_per_kg_day >= max_mg_per_kg_dose),
  max_doses_per_day   integer CHECK (max_doses_per_day BETWEEN 1 AND 24),
  below_age_months    integer NOT NULL CHECK (below_age_months BETWEEN 1 AND 216),
  source_ref          text NOT NULL CHECK (length(source_ref) BETWEEN 1 AND 1000),
  CHECK (min_mg_per_kg_dose IS NULL OR min_mg_per_kg_dose <= max_mg_per_kg_dose)
);
INSERT INTO paediatric_dose_limits (ingredient, min_mg_per_kg_dose, max_mg_per_kg_dose, max_mg_per_kg_day,
                                    max_doses_per_day, below_age_months, source_ref) VALUES
  ('paracetamol', 10, 15, 60, 5, 144,
   'spec CDS-4 [U10]: 10-15 mg/kg/dose every 4-6 h, max 60 mg/kg/day, at most 5 doses in 24 h. ILLUSTRATIVE, from a '
   'low-authority summary (https://www.droracle.ai/articles/804809/what-is-the-recommended-dose-of-paracetamol-'
   'acetaminophen-for), not checked against Dược thư quốc gia or the leaflet (spec §9 U-11)');

-- ------------------------------------------------------------------------ CDS-5: teratogenic risk behind the flags

-- Why a drug carries drugs.pregnancy_warning, in words a doctor reads; matched like an interaction side (the most
-- specific row wins). The flag decides whether there is a finding; this only explains it.
CREATE TABLE pregnancy_risks (
  kind        text NOT NULL CHECK (kind IN ('ingredient', 'atc_class')),
  code        text NOT NULL,
  risk_vi     text NOT NULL CHECK (length(risk_vi) BETWEEN 1 AND 1000),
  source_ref  text NOT NULL CHECK (length(source_ref) BETWEEN 1 AND 1000),
  PRIMARY KEY (kind, code),
  CONSTRAINT code_form CHECK (CASE kind WHEN 'ingredient' THEN code = search_fold(code) AND code <> ''
                              ELSE code ~ '^[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?$' END)
);
INSERT INTO pregnancy_risks (kind, code, risk_vi, source_ref) VALUES
  ('ingredient', 'isotretinoin',
   'Isotretinoin đường uống gây dị tật bẩm sinh nặng, kể cả khi dùng ngắn ngày hay liều thấp.',
   'spec CDS-5 [U12]: MHRA Drug Safety Update, oral retinoids pregnancy prevention: '
   'https://www.gov.uk/drug-safety-update/oral-retinoids-pregnancy-prevention-reminder-of-measures-to-minimise-teratogenic-risk'),
  ('ingredient', 'misoprostol',
   'Misoprostol gây co bóp tử cung: sảy thai, sinh non và dị tật thai.',
   'spec CDS-5 [U11]; misoprostol labelling: contraindicated in pregnancy'),
  ('ingredient', 'acid valproic',
   'Valproat dùng khi mang thai gây dị tật bẩm sinh (khoảng 1 trong 10 trẻ) và rối loạn phát triển thần kinh '
   '(tới 30-40 % trẻ).',
   'spec CDS-5 [U11]; EMA 2018 valproate pregnancy prevention programme'),
  ('ingredient', 'warfarin',
   'Warfarin qua nhau thai: bệnh phôi do warfarin khi dùng trong 3 tháng đầu, chảy máu ở thai và trẻ sơ sinh.',
   'spec CDS-5 [U11]; warfarin labelling (pregnancy)'),
  ('atc_class', 'C09A',
   'Thuốc ức chế men chuyển gây độc tính trên thai, nhất là từ 3 tháng giữa: suy thận thai, thiểu ối, chậm cốt hoá '
   'xương sọ.',
   'spec CDS-5 [U11]; ACE inhibitor labelling, boxed warning: fetal toxicity'),
  ('atc_class', 'C09B',
   'Thuốc phối hợp có thuốc ức chế men chuyển gây độc tính trên thai, nhất là từ 3 tháng giữa: suy thận thai, thiểu ối.',
   'spec CDS-5 [U11]; ACE inhibitor labelling, boxed warning: fetal toxicity'),
  ('atc_class', 'C09C',
   'Thuốc chẹn thụ thể angiotensin II gây độc tính trên thai, nhất là từ 3 tháng giữa: suy thận thai, thiểu ối, chậm '
   'cốt hoá xương sọ.',
   'spec CDS-5 [U11]; ARB labelling, boxed warning: fetal toxicity'),
  ('atc_class', 'C09D',
   'Thuốc phối hợp có thuốc chẹn thụ thể angiotensin II gây độc tính trên thai, nhất là từ 3 tháng giữa: suy thận '
   'thai, thiểu ối.',
   'spec CDS-5 [U11]; ARB labelling, boxed warning: fetal toxicity');

-- ------------------------------------------------------------------------------------ what a draft is checked against

-- Everything the clinical checks (eprescription/checks.py) compare a draft with, as one JSON document: the draft's
-- drugs, the patient's active medications (lines of prescriptions being taken: issued, with a dispenser or dispensed,
-- within issue + the line's days), the interaction rules between any two of them, the allergies resolved against
-- classes and the catalogue, and the paediatric dose limits. It runs on every keystroke of the doctor's dry run, so
-- it is one statement, and a function: planning its dozen subqueries afresh costs about 2 ms, twice what executing
-- them does. A SQL function's plan is cached for the session (PostgreSQL 18), and forcing it generic skips planning
-- altogether; sent from the client, the statement kept getting custom plans (they look cheaper to the planner).
CREATE FUNCTION clinical_check_data(draft_drug_ids uuid[], for_patient uuid, excluded_prescriptions uuid[],
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
  ), rules AS (
    SELECT i.id, i.severity, i.effect_vi, i.advice_vi, i.source_ref, a.ids AS a_ids, b.ids AS b_ids
    FROM drug_interactions i
    CROSS JOIN LATERAL (SELECT array_agg(s.id) AS ids FROM subjects s
                        WHERE strpos(s.haystack, i.a_code) > 0
                          AND drug_matches_side(i.a_kind, i.a_code, s.ingredients, s.atc_code)) a
    CROSS JOIN LATERAL (SELECT array_agg(s.id) AS ids FROM subjects s
                        WHERE strpos(s.haystack, i.b_code) > 0
                          AND drug_matches_side(i.b_kind, i.b_code, s.ingredients, s.atc_code)) b
    WHERE a.ids IS NOT NULL AND b.ids IS NOT NULL
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
