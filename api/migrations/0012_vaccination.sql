-- Vaccination: the schedule as data (spec notifications.md §1), and the doses a child was given.
--
-- The schedule rows reproduce TT 10/2024/TT-BYT and TT 52/2025/TT-BYT as quoted by secondary sources; the circular
-- PDFs were not read, and TT 13/2026/TT-BYT (in force 01/7/2026, repeals TT 52/2025) carries no schedule table at
-- all. Every row therefore says its legal basis, source and confidence, and MUST be reviewed by a clinician before
-- launch. Changing the schedule is a new row (valid_from / valid_to), never an edit of history.

-- A series is what one reminder sequence follows: the doses of one antigen programme, possibly given with different
-- products (DTP: 5-in-1 ×3, then DPT booster, then Td).
CREATE TABLE vaccine_series (
  code           text PRIMARY KEY CHECK (code ~ '^[A-Z][A-Z0-9_]{1,30}$'),
  name_vi        text NOT NULL CHECK (length(name_vi) BETWEEN 1 AND 200),
  program        text NOT NULL CHECK (program IN ('tcmr', 'paid')),
  -- 'pilot_provinces': free only in some provinces/years (rota, PCV): planned as optional until a dose is recorded
  program_scope  text NOT NULL CHECK (program_scope IN ('national', 'pilot_provinces', 'service')),
  -- false: kept for the catalogue only (pregnant women's tetanus, HPV with unconfirmed ages); never planned
  for_children   boolean NOT NULL,
  -- series whose doses this one's products may replace (6-in-1 covers 5-in-1 and polio). When a child has doses in
  -- overlapping series the plan asks a clinician instead of computing equivalences.
  overlaps_with  text[] NOT NULL DEFAULT '{}',
  note           text NOT NULL DEFAULT ''
);

CREATE TABLE vaccines (
  code           text PRIMARY KEY CHECK (code ~ '^[A-Z][A-Z0-9_]{1,30}$'),
  name_vi        text NOT NULL CHECK (length(name_vi) BETWEEN 1 AND 200),
  -- what a reminder may say; no more health detail than the vaccine's common name (spec §2.3)
  short_name_vi  text NOT NULL CHECK (length(short_name_vi) BETWEEN 1 AND 40),
  series         text NOT NULL REFERENCES vaccine_series (code),
  program        text NOT NULL CHECK (program IN ('tcmr', 'paid')),
  -- live injectable vaccines are given the same day or >= 28 days apart (spec §1.3); oral ones are exempt
  live           boolean NOT NULL,
  route          text NOT NULL CHECK (route IN ('injection', 'oral')),
  note           text NOT NULL DEFAULT '',
  UNIQUE (code, series)
);

-- Ages are calendar months + days: "đủ N tháng" is N completed calendar months (31 Jan + 1 month = 28/29 Feb).
CREATE TABLE vaccine_schedule_doses (
  series               text NOT NULL REFERENCES vaccine_series (code),
  dose_number          integer NOT NULL CHECK (dose_number BETWEEN 0 AND 20),
  vaccine              text NOT NULL REFERENCES vaccines (code),
  -- recommended age: what reminders use (posters' 2-3-4 months)
  rec_age_months       integer NOT NULL DEFAULT 0 CHECK (rec_age_months >= 0),
  rec_age_days         integer NOT NULL DEFAULT 0 CHECK (rec_age_days >= 0),
  -- validity floor: earlier doses are recorded with a warning, not refused (circulars: "khi trẻ đủ N tháng")
  min_age_months       integer NOT NULL DEFAULT 0 CHECK (min_age_months >= 0),
  min_age_days         integer NOT NULL DEFAULT 0 CHECK (min_age_days >= 0),
  -- from the previous dose of the series; "ít nhất 1 tháng" is taken as 28 days (spec §1.2)
  min_interval_days    integer NOT NULL DEFAULT 0 CHECK (min_interval_days >= 0),
  -- recommended interval from the previous dose, where the source gives one (calendar months + days)
  rec_interval_months  integer CHECK (rec_interval_months >= 0),
  rec_interval_days    integer CHECK (rec_interval_days >= 0),
  -- the dose must be given before DOB + max_age. hard_cutoff: past it the dose must not be given (rotavirus) and
  -- recalls stop; otherwise it is the target group's bound: the free programme no longer vaccinates routinely, so
  -- the plan says "ask a clinician" (paid vaccine / catch-up campaign) and recalls stop too.
  max_age_months       integer CHECK (max_age_months >= 0),
  max_age_days         integer CHECK (max_age_days >= 0),
  hard_cutoff          boolean NOT NULL DEFAULT false,
  program_scope        text NOT NULL CHECK (program_scope IN ('national', 'pilot_provinces', 'service')),
  legal_basis          text NOT NULL CHECK (length(legal_basis) BETWEEN 1 AND 500),
  source               text NOT NULL CHECK (length(source) BETWEEN 1 AND 500),
  confidence           text NOT NULL CHECK (confidence IN ('verified', 'secondary', 'unconfirmed')),
  note                 text NOT NULL DEFAULT '',
  valid_from           date NOT NULL,
  valid_to             date,
  PRIMARY KEY (series, dose_number, valid_from),
  FOREIGN KEY (vaccine, series) REFERENCES vaccines (code, series),
  CHECK (valid_to IS NULL OR valid_to > valid_from),
  CHECK ((rec_interval_months IS NULL) = (rec_interval_days IS NULL)),
  CHECK ((max_age_months IS NULL) = (max_age_days IS NULL)),
  CHECK (NOT hard_cutoff OR max_age_months IS NOT NULL)
);
CREATE INDEX vaccine_schedule_doses_vaccine ON vaccine_schedule_doses (vaccine, dose_number);

-- A dose given. Corrections are marks (entered in error), never deletes or edits: the record is clinical history.
CREATE TABLE vaccination_doses (
  id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  patient_id               uuid NOT NULL REFERENCES patients (id),
  vaccine                  text NOT NULL REFERENCES vaccines (code),
  dose_number              integer NOT NULL CHECK (dose_number BETWEEN 0 AND 20),
  given_on                 date NOT NULL CHECK (given_on >= '1900-01-01'),
  place                    text NOT NULL DEFAULT '' CHECK (length(place) <= 300),
  lot                      text NOT NULL DEFAULT '' CHECK (length(lot) <= 100),
  -- who vouches for it: the family from the vaccination booklet, or a clinician
  source                   text NOT NULL CHECK (source IN ('guardian', 'patient', 'clinician')),
  recorded_by              uuid NOT NULL REFERENCES accounts (id),
  created_at               timestamptz NOT NULL DEFAULT now(),
  entered_in_error_at      timestamptz,
  entered_in_error_by      uuid REFERENCES accounts (id),
  entered_in_error_reason  text CHECK (length(entered_in_error_reason) BETWEEN 1 AND 500),
  CONSTRAINT error_mark_complete CHECK (
    (entered_in_error_at IS NULL) = (entered_in_error_by IS NULL)
    AND (entered_in_error_at IS NULL) = (entered_in_error_reason IS NULL))
);
CREATE UNIQUE INDEX vaccination_doses_once ON vaccination_doses (patient_id, vaccine, dose_number)
  WHERE entered_in_error_at IS NULL;
CREATE INDEX vaccination_doses_patient ON vaccination_doses (patient_id, given_on);

-- The only change a dose row may see is being marked entered in error, once.
CREATE FUNCTION vaccination_doses_mark_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.entered_in_error_at IS NOT NULL
     OR (NEW.patient_id, NEW.vaccine, NEW.dose_number, NEW.given_on, NEW.place, NEW.lot, NEW.source,
         NEW.recorded_by, NEW.created_at)
        IS DISTINCT FROM
        (OLD.patient_id, OLD.vaccine, OLD.dose_number, OLD.given_on, OLD.place, OLD.lot, OLD.source,
         OLD.recorded_by, OLD.created_at) THEN
    RAISE EXCEPTION 'vaccination doses are corrected by marking them entered in error, not by editing'
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER vaccination_doses_mark_only BEFORE UPDATE ON vaccination_doses
  FOR EACH ROW EXECUTE FUNCTION vaccination_doses_mark_only();
CREATE TRIGGER vaccination_doses_no_delete BEFORE DELETE ON vaccination_doses
  FOR EACH ROW EXECUTE FUNCTION forbid_change();

-- ---------------------------------------------------------------------------------------------------------------
-- Seed: series, vaccines, schedule. Sources are those of spec notifications.md §1.3 / §1.5.

INSERT INTO vaccine_series (code, name_vi, program, program_scope, for_children, overlaps_with, note) VALUES
  ('HEPB_BD', 'Viêm gan B sơ sinh', 'tcmr', 'national', true, '{}', ''),
  ('BCG', 'Lao', 'tcmr', 'national', true, '{}', ''),
  ('DTP', 'Bạch hầu – ho gà – uốn ván (kèm viêm gan B, Hib)', 'tcmr', 'national', true, '{}',
   '3 mũi 5 trong 1, nhắc lại DPT lúc 18 tháng, Td lúc 7 tuổi'),
  ('OPV', 'Bại liệt uống', 'tcmr', 'national', true, '{}', ''),
  ('IPV', 'Bại liệt tiêm', 'tcmr', 'national', true, '{}', ''),
  ('MEASLES', 'Sởi – Rubella', 'tcmr', 'national', true, '{}',
   'Mũi 9 tháng là sởi đơn giá, mũi 18 tháng là sởi–rubella (MR); TT52 liệt kê theo bệnh, không theo vắc xin'),
  ('JE', 'Viêm não Nhật Bản', 'tcmr', 'national', true, '{}', ''),
  ('ROTA', 'Tiêu chảy do rotavirus', 'tcmr', 'pilot_provinces', true, '{}',
   'Miễn phí chỉ ở một số tỉnh (32 tỉnh từ cuối 2024, thêm 9 tỉnh 2025); danh sách tỉnh chưa xác nhận'),
  ('PCV', 'Phế cầu', 'tcmr', 'pilot_provinces', true, '{}',
   'Theo lộ trình Nghị quyết 104/NQ-CP; lịch và tỉnh áp dụng chưa xác nhận'),
  ('TT_PREG', 'Uốn ván cho phụ nữ có thai', 'tcmr', 'national', false, '{}',
   'Không lập lịch cho trẻ em; lịch phụ thuộc số mũi đã tiêm và lần mang thai – do nhân viên y tế quyết định'),
  ('HPV', 'HPV', 'tcmr', 'national', false, '{}',
   'TT 13/2026 đưa HPV vào danh mục; độ tuổi và số mũi chưa xác nhận – chưa lập lịch'),
  ('HEXA', '6 trong 1 (dịch vụ)', 'paid', 'service', true, '{DTP,OPV,IPV}',
   'Thay cho 5 trong 1 và bại liệt của TCMR; khi trẻ tiêm lẫn hai loại, bác sĩ quyết định mũi tiếp theo'),
  ('ROTA_RX', 'Rotarix (dịch vụ)', 'paid', 'service', true, '{ROTA}', ''),
  ('ROTA_TEQ', 'RotaTeq (dịch vụ)', 'paid', 'service', true, '{ROTA}', ''),
  ('PCV_PAID', 'Phế cầu (dịch vụ)', 'paid', 'service', true, '{PCV}',
   'Chỉ lập lịch khi bắt đầu từ 6 tuần đến 6 tháng tuổi (3 mũi + nhắc); các phác đồ khác do bác sĩ quyết định'),
  ('FLU', 'Cúm (dịch vụ)', 'paid', 'service', true, '{}',
   'Mùa đầu tiên dưới 9 tuổi: 2 mũi cách nhau ≥ 4 tuần; nhắc hằng năm chưa được lập lịch'),
  ('MMR', 'Sởi – quai bị – rubella (dịch vụ)', 'paid', 'service', true, '{MEASLES}', ''),
  ('JE_LIVE', 'Viêm não Nhật Bản sống (dịch vụ)', 'paid', 'service', true, '{JE}', '');

INSERT INTO vaccines (code, name_vi, short_name_vi, series, program, live, route, note) VALUES
  ('HEPB_BD', 'Vắc xin viêm gan B đơn giá (liều sơ sinh)', 'Viêm gan B sơ sinh', 'HEPB_BD', 'tcmr', false,
   'injection', ''),
  ('BCG', 'Vắc xin lao (BCG)', 'Lao (BCG)', 'BCG', 'tcmr', true, 'injection', ''),
  ('DTP_HEPB_HIB', 'Vắc xin phối hợp bạch hầu, ho gà, uốn ván, viêm gan B, Hib (5 trong 1)', '5 trong 1', 'DTP',
   'tcmr', false, 'injection', 'ComBE Five, Quinvaxem và tương tự'),
  ('DTP_BOOST', 'Vắc xin bạch hầu, ho gà, uốn ván (DPT) nhắc lại', 'DPT nhắc lại', 'DTP', 'tcmr', false,
   'injection', ''),
  ('TD', 'Vắc xin uốn ván, bạch hầu giảm liều (Td) nhắc lại', 'Td nhắc lại', 'DTP', 'tcmr', false, 'injection',
   ''),
  ('OPV', 'Vắc xin bại liệt uống đa giá (bOPV)', 'Bại liệt uống', 'OPV', 'tcmr', true, 'oral', ''),
  ('IPV', 'Vắc xin bại liệt tiêm đa giá (IPV)', 'Bại liệt tiêm', 'IPV', 'tcmr', false, 'injection', ''),
  ('MEASLES', 'Vắc xin sởi đơn giá (MVVAC)', 'Sởi', 'MEASLES', 'tcmr', true, 'injection', ''),
  ('MR', 'Vắc xin sởi – rubella (MRVAC)', 'Sởi-Rubella (MR)', 'MEASLES', 'tcmr', true, 'injection', ''),
  ('JE', 'Vắc xin viêm não Nhật Bản bất hoạt (Jevax)', 'Viêm não Nhật Bản', 'JE', 'tcmr', false, 'injection', ''),
  ('ROTA', 'Vắc xin rota uống (Rotavin-M1)', 'Rota (uống)', 'ROTA', 'tcmr', true, 'oral', ''),
  ('PCV', 'Vắc xin phế cầu (chương trình TCMR)', 'Phế cầu', 'PCV', 'tcmr', false, 'injection', ''),
  ('TT', 'Vắc xin uốn ván (phụ nữ có thai)', 'Uốn ván', 'TT_PREG', 'tcmr', false, 'injection', ''),
  ('HPV', 'Vắc xin HPV', 'HPV', 'HPV', 'tcmr', false, 'injection', ''),
  ('HEXA', 'Vắc xin 6 trong 1 (Hexaxim, Infanrix Hexa)', '6 trong 1', 'HEXA', 'paid', false, 'injection', ''),
  ('ROTA_RX', 'Vắc xin rota uống Rotarix', 'Rotarix', 'ROTA_RX', 'paid', true, 'oral', ''),
  ('ROTA_TEQ', 'Vắc xin rota uống RotaTeq', 'RotaTeq', 'ROTA_TEQ', 'paid', true, 'oral', ''),
  ('PCV_PAID', 'Vắc xin phế cầu (Synflorix, Prevenar 13)', 'Phế cầu', 'PCV_PAID', 'paid', false, 'injection', ''),
  ('FLU', 'Vắc xin cúm (Vaxigrip Tetra, Influvac Tetra, GC Flu)', 'Cúm', 'FLU', 'paid', false, 'injection', ''),
  ('MMR', 'Vắc xin sởi – quai bị – rubella (MMR)', 'Sởi-Quai bị-Rubella', 'MMR', 'paid', true, 'injection', ''),
  ('JE_LIVE', 'Vắc xin viêm não Nhật Bản sống (Imojev)', 'Viêm não NB (Imojev)', 'JE_LIVE', 'paid', true,
   'injection', '');

-- TCMR rows. The old antigens keep TT 38/2017's wording through TT 10/2024 and TT 52/2025 (spec §1.1), hence
-- valid_from 2017-10-17. valid_to stays open: whether TT 13/2026 (no table, delegates to Cục Phòng bệnh guidance
-- that was not found) changes anything is unconfirmed.
INSERT INTO vaccine_schedule_doses
  (series, dose_number, vaccine, rec_age_months, rec_age_days, min_age_months, min_age_days, min_interval_days,
   rec_interval_months, rec_interval_days, max_age_months, max_age_days, hard_cutoff, program_scope, legal_basis,
   source, confidence, note, valid_from) VALUES
  ('HEPB_BD', 0, 'HEPB_BD', 0, 0, 0, 0, 0, NULL, NULL, 0, 2, false, 'national',
   'TT 10/2024/TT-BYT; TT 52/2025/TT-BYT: "trong vòng 24 giờ sau khi sinh"; TT 13/2026/TT-BYT Điều 26.1',
   'Ghi chú kiểm toán OCR các thông tư (thứ cấp); WHO: tiêm càng sớm càng tốt trong 24 giờ', 'secondary',
   'Trong ngày sinh hoặc ngày kế tiếp (24 giờ); thông tư không quy định tiêm muộn: sau đó hỏi bác sĩ',
   '2017-10-17'),
  ('BCG', 1, 'BCG', 0, 0, 0, 0, 0, NULL, NULL, 12, 0, false, 'national',
   'TT 38/2017/TT-BYT; TT 10/2024/TT-BYT: "trong vòng 1 tháng sau khi sinh", đối tượng trẻ dưới 1 tuổi',
   'Áp phích HCDC 09/01/2024 (thứ cấp)', 'secondary',
   'Ngoài 1 tuổi thì hỏi bác sĩ (WHO cho phép tiêm muộn; thông tư không quy định)', '2017-10-17'),
  ('DTP', 1, 'DTP_HEPB_HIB', 2, 0, 2, 0, 0, NULL, NULL, 12, 0, false, 'national',
   'TT 10/2024/TT-BYT; TT 52/2025/TT-BYT: "khi trẻ đủ 02 tháng tuổi"', 'Ghi chú kiểm toán OCR; áp phích HCDC 2024',
   'secondary', 'Đối tượng TCMR dưới 1 tuổi', '2017-10-17'),
  ('DTP', 2, 'DTP_HEPB_HIB', 3, 0, 0, 0, 28, 1, 0, 12, 0, false, 'national',
   'TT 10/2024/TT-BYT; TT 52/2025/TT-BYT: "ít nhất 01 tháng sau lần 1"', 'Ghi chú kiểm toán OCR; áp phích HCDC 2024',
   'secondary', '1 tháng = tháng dương lịch để nhắc, 28 ngày là mức tối thiểu', '2017-10-17'),
  ('DTP', 3, 'DTP_HEPB_HIB', 4, 0, 0, 0, 28, 1, 0, 12, 0, false, 'national',
   'TT 10/2024/TT-BYT; TT 52/2025/TT-BYT: "ít nhất 01 tháng sau lần 2"', 'Ghi chú kiểm toán OCR; áp phích HCDC 2024',
   'secondary', '', '2017-10-17'),
  ('DTP', 4, 'DTP_BOOST', 18, 0, 18, 0, 180, NULL, NULL, 24, 0, false, 'national',
   'TT 10/2024/TT-BYT; TT 52/2025/TT-BYT: "nhắc lại lần 1 … 18 tháng"', 'Ghi chú kiểm toán OCR (thứ cấp)',
   'secondary', 'Khoảng cách ≥ 6 tháng sau mũi 3 theo WHO (không có trong thông tư); đối tượng dưới 2 tuổi',
   '2017-10-17'),
  ('DTP', 5, 'TD', 84, 0, 84, 0, 0, NULL, NULL, 96, 0, false, 'national',
   'TT 10/2024/TT-BYT; TT 52/2025/TT-BYT: Td nhắc lại lần 2 cho trẻ 7 tuổi', 'Ghi chú kiểm toán OCR (thứ cấp)',
   'secondary', 'Giới hạn 8 tuổi là giả định của "trẻ 7 tuổi": sau đó hỏi bác sĩ', '2017-10-17'),
  ('OPV', 1, 'OPV', 2, 0, 2, 0, 0, NULL, NULL, 12, 0, false, 'national',
   'TT 38/2017/TT-BYT; TT 10/2024/TT-BYT (cùng lịch với 5 trong 1)', 'Áp phích HCDC 2024 (thứ cấp)', 'secondary',
   '', '2017-10-17'),
  ('OPV', 2, 'OPV', 3, 0, 0, 0, 28, 1, 0, 12, 0, false, 'national',
   'TT 38/2017/TT-BYT; TT 10/2024/TT-BYT', 'Áp phích HCDC 2024 (thứ cấp)', 'secondary', '', '2017-10-17'),
  ('OPV', 3, 'OPV', 4, 0, 0, 0, 28, 1, 0, 12, 0, false, 'national',
   'TT 38/2017/TT-BYT; TT 10/2024/TT-BYT', 'Áp phích HCDC 2024 (thứ cấp)', 'secondary', '', '2017-10-17'),
  ('IPV', 1, 'IPV', 5, 0, 5, 0, 0, NULL, NULL, 12, 0, false, 'national',
   'TT 10/2024/TT-BYT: "Mũi 1: khi trẻ đủ 5 tháng tuổi"', 'Áp phích HCDC 09/01/2024 (thứ cấp)', 'secondary', '',
   '2017-10-17'),
  ('IPV', 2, 'IPV', 9, 0, 9, 0, 28, NULL, NULL, 12, 0, false, 'national',
   'TT 10/2024/TT-BYT: "Mũi 2: khi trẻ đủ 9 tháng tuổi"', 'Áp phích HCDC 09/01/2024 (thứ cấp)', 'secondary',
   'Khoảng cách 4 tuần theo WHO', '2017-10-17'),
  ('MEASLES', 1, 'MEASLES', 9, 0, 9, 0, 0, NULL, NULL, 12, 0, false, 'national',
   'TT 52/2025/TT-BYT: sởi đơn giá 9 tháng; TT 10/2024: vắc xin có chứa thành phần sởi',
   'Ghi chú kiểm toán OCR (thứ cấp)', 'secondary', '', '2017-10-17'),
  ('MEASLES', 2, 'MR', 18, 0, 18, 0, 28, NULL, NULL, 24, 0, false, 'national',
   'TT 38/2017; TT 10/2024; TT 52/2025/TT-BYT: sởi–rubella 18 tháng', 'Áp phích HCDC 2024 (thứ cấp)', 'secondary',
   'Đối tượng dưới 2 tuổi; cách vắc xin sống tiêm khác ≥ 28 ngày', '2017-10-17'),
  ('JE', 1, 'JE', 12, 0, 12, 0, 0, NULL, NULL, 60, 0, false, 'national',
   'TT 38/2017/TT-BYT; TT 10/2024/TT-BYT: "khi trẻ đủ 1 tuổi"', 'Áp phích HCDC 2024 (thứ cấp)', 'secondary',
   'Đối tượng 1–5 tuổi; giới hạn 5 tuổi (60 tháng) là cách đọc thận trọng', '2017-10-17'),
  ('JE', 2, 'JE', 12, 7, 0, 0, 7, 0, 7, 60, 0, false, 'national',
   'TT 38/2017/TT-BYT; TT 10/2024/TT-BYT: 1–2 tuần sau mũi 1', 'Áp phích HCDC 2024 (thứ cấp)', 'secondary', '',
   '2017-10-17'),
  ('JE', 3, 'JE', 24, 0, 0, 0, 365, 12, 0, 60, 0, false, 'national',
   'TT 38/2017/TT-BYT; TT 10/2024/TT-BYT: 1 năm sau mũi 2', 'Áp phích HCDC 2024 (thứ cấp)', 'secondary', '',
   '2017-10-17');

INSERT INTO vaccine_schedule_doses
  (series, dose_number, vaccine, rec_age_months, rec_age_days, min_age_months, min_age_days, min_interval_days,
   rec_interval_months, rec_interval_days, max_age_months, max_age_days, hard_cutoff, program_scope, legal_basis,
   source, confidence, note, valid_from) VALUES
  ('ROTA', 1, 'ROTA', 2, 0, 0, 42, 0, NULL, NULL, 6, 0, true, 'pilot_provinces',
   'TT 52/2025/TT-BYT (dòng rota chưa đọc được)', 'Thông tin sản phẩm Rotavin-M1 (thứ cấp: kho dgeniust/hcmute-care)',
   'secondary', 'Uống từ 6 tuần; hoàn tất trước 6 tháng tuổi – quá hạn thì không uống nữa', '2024-10-01'),
  ('ROTA', 2, 'ROTA', 3, 0, 0, 0, 28, 1, 0, 6, 0, true, 'pilot_provinces',
   'TT 52/2025/TT-BYT (dòng rota chưa đọc được)', 'Thông tin sản phẩm Rotavin-M1 (thứ cấp)', 'secondary',
   'Hoàn tất trước 6 tháng tuổi', '2024-10-01'),
  ('PCV', 1, 'PCV', 2, 0, 0, 42, 0, NULL, NULL, 12, 0, false, 'pilot_provinces',
   'TT 52/2025/TT-BYT (chưa đọc được); Nghị quyết 104/NQ-CP', 'Một bộ dữ liệu thứ cấp duy nhất', 'unconfirmed',
   'Lịch và tỉnh áp dụng chưa xác nhận', '2025-01-01'),
  ('PCV', 2, 'PCV', 4, 0, 0, 0, 28, 2, 0, 12, 0, false, 'pilot_provinces',
   'TT 52/2025/TT-BYT (chưa đọc được): "2 tháng sau mũi 1" (thứ cấp)', 'Một bộ dữ liệu thứ cấp duy nhất',
   'unconfirmed', '', '2025-01-01'),
  ('PCV', 3, 'PCV', 12, 0, 0, 0, 56, NULL, NULL, 24, 0, false, 'pilot_provinces',
   'TT 52/2025/TT-BYT (chưa đọc được)', 'Một bộ dữ liệu thứ cấp duy nhất', 'unconfirmed',
   'Mũi nhắc khoảng 12 tháng; khoảng cách tối thiểu 8 tuần là giả định theo WHO', '2025-01-01'),
  ('TT_PREG', 1, 'TT', 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, false, 'national',
   'Lịch TCMR cho phụ nữ có thai', 'Dữ liệu ứng dụng công khai (thứ cấp)', 'secondary',
   'Sớm khi có thai lần đầu; không lập lịch tự động', '2017-10-17'),
  ('TT_PREG', 2, 'TT', 0, 0, 0, 0, 28, NULL, NULL, NULL, NULL, false, 'national',
   'Lịch TCMR cho phụ nữ có thai', 'Dữ liệu ứng dụng công khai (thứ cấp)', 'secondary',
   'Ít nhất 1 tháng sau mũi 1', '2017-10-17'),
  ('TT_PREG', 3, 'TT', 0, 0, 0, 0, 180, NULL, NULL, NULL, NULL, false, 'national',
   'Lịch TCMR cho phụ nữ có thai', 'Dữ liệu ứng dụng công khai (thứ cấp)', 'secondary',
   'Ít nhất 6 tháng sau mũi 2 hoặc lần có thai sau', '2017-10-17'),
  ('TT_PREG', 4, 'TT', 0, 0, 0, 0, 365, NULL, NULL, NULL, NULL, false, 'national',
   'Lịch TCMR cho phụ nữ có thai', 'Dữ liệu ứng dụng công khai (thứ cấp)', 'secondary',
   'Ít nhất 1 năm sau mũi 3 hoặc lần có thai sau', '2017-10-17'),
  ('TT_PREG', 5, 'TT', 0, 0, 0, 0, 365, NULL, NULL, NULL, NULL, false, 'national',
   'Lịch TCMR cho phụ nữ có thai', 'Dữ liệu ứng dụng công khai (thứ cấp)', 'secondary',
   'Ít nhất 1 năm sau mũi 4 hoặc lần có thai sau', '2017-10-17'),
  ('HPV', 1, 'HPV', 132, 0, 108, 0, 0, NULL, NULL, NULL, NULL, false, 'national',
   'TT 13/2026/TT-BYT (từ 01/7/2026; thứ cấp)', 'Tin báo chí (thứ cấp)', 'unconfirmed',
   'Khoảng 11 tuổi, trẻ gái (chưa xác nhận); không lập lịch', '2026-07-01');

-- Paid (dịch vụ) vaccines: not regulated schedules; the product leaflet wins. Planned only once a dose is recorded.
INSERT INTO vaccine_schedule_doses
  (series, dose_number, vaccine, rec_age_months, rec_age_days, min_age_months, min_age_days, min_interval_days,
   rec_interval_months, rec_interval_days, max_age_months, max_age_days, hard_cutoff, program_scope, legal_basis,
   source, confidence, note, valid_from) VALUES
  ('HEXA', 1, 'HEXA', 2, 0, 2, 0, 0, NULL, NULL, NULL, NULL, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng của nhà sản xuất', 'Danh mục vắc xin kiểu VNVC (kho dgeniust/hcmute-care, thứ cấp)',
   'secondary', 'Lịch 2-3-4 tháng; cũng dùng 2-4-6 tháng theo chỉ định', '2017-01-01'),
  ('HEXA', 2, 'HEXA', 3, 0, 0, 0, 28, 1, 0, NULL, NULL, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng của nhà sản xuất', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary', '',
   '2017-01-01'),
  ('HEXA', 3, 'HEXA', 4, 0, 0, 0, 28, 1, 0, NULL, NULL, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng của nhà sản xuất', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary', '',
   '2017-01-01'),
  ('HEXA', 4, 'HEXA', 16, 0, 16, 0, 180, NULL, NULL, NULL, NULL, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng của nhà sản xuất', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary',
   'Nhắc lại 16–18 tháng; ≥ 6 tháng sau mũi 3 theo WHO', '2017-01-01'),
  ('ROTA_RX', 1, 'ROTA_RX', 2, 0, 0, 42, 0, NULL, NULL, 0, 168, true, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng Rotarix', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary',
   '2 liều từ 6 tuần đến trước 24 tuần tuổi', '2017-01-01'),
  ('ROTA_RX', 2, 'ROTA_RX', 3, 0, 0, 0, 28, 1, 0, 0, 168, true, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng Rotarix', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary',
   'Trước 24 tuần tuổi', '2017-01-01'),
  ('ROTA_TEQ', 1, 'ROTA_TEQ', 2, 0, 0, 52, 0, NULL, NULL, 0, 85, true, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng RotaTeq', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary',
   'Liều 1 từ 7,5 đến 12 tuần tuổi', '2017-01-01'),
  ('ROTA_TEQ', 2, 'ROTA_TEQ', 3, 0, 0, 0, 28, 1, 0, 0, 224, true, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng RotaTeq', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary',
   'Tất cả các liều trước 32 tuần tuổi', '2017-01-01'),
  ('ROTA_TEQ', 3, 'ROTA_TEQ', 4, 0, 0, 0, 28, 1, 0, 0, 224, true, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng RotaTeq', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary',
   'Tất cả các liều trước 32 tuần tuổi', '2017-01-01'),
  ('PCV_PAID', 1, 'PCV_PAID', 2, 0, 0, 42, 0, NULL, NULL, 7, 0, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng Synflorix / Prevenar 13', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary',
   'Phác đồ bắt đầu 6 tuần–6 tháng; bắt đầu muộn hơn (2+1, 2 mũi, 1 mũi) thì bác sĩ quyết định', '2017-01-01'),
  ('PCV_PAID', 2, 'PCV_PAID', 3, 0, 0, 0, 28, 1, 0, NULL, NULL, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng Synflorix / Prevenar 13', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary', '',
   '2017-01-01'),
  ('PCV_PAID', 3, 'PCV_PAID', 4, 0, 0, 0, 28, 1, 0, NULL, NULL, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng Synflorix / Prevenar 13', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary', '',
   '2017-01-01'),
  ('PCV_PAID', 4, 'PCV_PAID', 12, 0, 12, 0, 56, NULL, NULL, NULL, NULL, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng Synflorix / Prevenar 13', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'unconfirmed',
   'Tuổi mũi nhắc (khoảng 12 tháng) và khoảng cách 8 tuần chưa xác nhận', '2017-01-01'),
  ('FLU', 1, 'FLU', 6, 0, 6, 0, 0, NULL, NULL, NULL, NULL, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng vắc xin cúm', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary',
   'Từ 6 tháng tuổi', '2017-01-01'),
  ('FLU', 2, 'FLU', 7, 0, 0, 0, 28, 1, 0, NULL, NULL, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng vắc xin cúm', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary',
   'Mùa đầu tiên dưới 9 tuổi; các năm sau 1 mũi mỗi năm (chưa lập lịch)', '2017-01-01'),
  ('MMR', 1, 'MMR', 12, 0, 12, 0, 0, NULL, NULL, NULL, NULL, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng MMR', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary',
   'Từ 12 tháng; ≥ 1 tháng sau vắc xin sởi đơn giá', '2017-01-01'),
  ('MMR', 2, 'MMR', 48, 0, 0, 0, 28, NULL, NULL, NULL, NULL, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng MMR', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary', '4–6 tuổi',
   '2017-01-01'),
  ('JE_LIVE', 1, 'JE_LIVE', 9, 0, 9, 0, 0, NULL, NULL, NULL, NULL, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng Imojev', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary', 'Từ 9 tháng',
   '2017-01-01'),
  ('JE_LIVE', 2, 'JE_LIVE', 21, 0, 0, 0, 365, 12, 0, NULL, NULL, false, 'service',
   'Ngoài TCMR; hướng dẫn sử dụng Imojev', 'Danh mục vắc xin kiểu VNVC (thứ cấp)', 'secondary',
   '≥ 1 năm sau mũi 1', '2017-01-01');
