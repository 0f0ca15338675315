-- Consultations: specialties, doctors' public profiles and schedules, ICD-10 subset, bookings and their records.

CREATE TABLE specialties (
  code     text PRIMARY KEY CHECK (code ~ '^[a-z_]{2,40}$'),
  name_vi  text NOT NULL,
  name_en  text NOT NULL
);

INSERT INTO specialties (code, name_vi, name_en) VALUES
  ('nhi_khoa', 'Nhi khoa', 'Paediatrics'),
  ('noi_tong_quat', 'Nội tổng quát', 'General internal medicine'),
  ('tim_mach', 'Tim mạch', 'Cardiology'),
  ('noi_tiet', 'Nội tiết', 'Endocrinology'),
  ('da_lieu', 'Da liễu', 'Dermatology'),
  ('tai_mui_hong', 'Tai mũi họng', 'Otorhinolaryngology'),
  ('san_phu_khoa', 'Sản phụ khoa', 'Obstetrics and gynaecology'),
  ('co_xuong_khop', 'Cơ xương khớp', 'Rheumatology and musculoskeletal'),
  ('rang_ham_mat', 'Răng hàm mặt', 'Dentistry and maxillofacial'),
  ('dinh_duong', 'Dinh dưỡng', 'Nutrition'),
  ('y_hoc_gia_dinh', 'Y học gia đình', 'Family medicine');

-- What patients see when choosing a doctor. search_doc is the folded (lower-case, unaccented) text searched with
-- trigrams; the service rewrites it whenever the name, specialty or profile changes.
CREATE TABLE doctor_profiles (
  account_id            uuid PRIMARY KEY REFERENCES doctors (account_id),
  specialty_code        text NOT NULL REFERENCES specialties (code),
  bio                   text NOT NULL DEFAULT '' CHECK (length(bio) <= 2000),
  languages             text[] NOT NULL DEFAULT '{vi}',
  fee_vnd               bigint NOT NULL DEFAULT 0 CHECK (fee_vnd >= 0 AND fee_vnd <= 100000000),
  slot_minutes          integer NOT NULL DEFAULT 20 CHECK (slot_minutes BETWEEN 10 AND 120),
  accepts_bookings      boolean NOT NULL DEFAULT true,
  search_doc            text NOT NULL DEFAULT '',
  updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX doctor_profiles_search ON doctor_profiles USING gin (search_doc gin_trgm_ops);
CREATE INDEX doctor_profiles_specialty ON doctor_profiles (specialty_code);

-- Weekly hours in Vietnam local time (Asia/Ho_Chi_Minh has no DST, but we still compute per date).
CREATE TABLE availability_rules (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  doctor_id    uuid NOT NULL REFERENCES doctors (account_id),
  weekday      smallint NOT NULL CHECK (weekday BETWEEN 1 AND 7),  -- ISO: 1 = Monday
  start_time   time NOT NULL,
  end_time     time NOT NULL,
  valid_from   date NOT NULL DEFAULT '2000-01-01',
  valid_until  date,
  CHECK (start_time < end_time),
  CHECK (valid_until IS NULL OR valid_until >= valid_from)
);
CREATE INDEX availability_rules_doctor ON availability_rules (doctor_id, weekday);

-- One-off changes: leave removes time, extra adds it.
CREATE TABLE availability_exceptions (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  doctor_id   uuid NOT NULL REFERENCES doctors (account_id),
  kind        text NOT NULL CHECK (kind IN ('leave', 'extra')),
  during      tstzrange NOT NULL CHECK (NOT isempty(during) AND lower_inc(during) AND NOT upper_inc(during)),
  reason      text NOT NULL DEFAULT '' CHECK (length(reason) <= 300),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX availability_exceptions_doctor ON availability_exceptions USING gist (doctor_id, during);

-- ICD-10 subset shipped as seed data (see consultations/icd10_seed.sql for sources).
CREATE TABLE icd10_codes (
  code              text PRIMARY KEY CHECK (code ~ '^[A-TV-Z][0-9]{2}(\.[0-9A-Z]{1,2})?$'),
  title_vi          text NOT NULL,
  title_en          text NOT NULL,
  telemedicine_tt30 boolean NOT NULL DEFAULT false,
  source            text NOT NULL,
  search_doc        text GENERATED ALWAYS AS (lower(code) || ' ' || search_fold(title_vi) || ' ' || lower(title_en)) STORED
);
CREATE INDEX icd10_codes_search ON icd10_codes USING gin (search_doc gin_trgm_ops);

CREATE TABLE consultations (
  id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  doctor_id               uuid NOT NULL REFERENCES doctors (account_id),
  patient_id              uuid NOT NULL REFERENCES patients (id),     -- the person treated (may be a child)
  booked_by               uuid NOT NULL REFERENCES accounts (id),     -- the account that attends (self or guardian)
  slot                    tstzrange NOT NULL CHECK (NOT isempty(slot) AND lower_inc(slot) AND NOT upper_inc(slot)),
  status                  text NOT NULL DEFAULT 'booked' CHECK (status IN (
                            'booked', 'waiting', 'in_call', 'completed',
                            'cancelled_by_patient', 'cancelled_by_doctor', 'no_show')),
  reason                  text NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
  -- TT 30/2023 condition the patient chose when booking (TM-1); NULL = consultation/advice only
  telemedicine_icd10      text REFERENCES icd10_codes (code),
  fee_vnd                 bigint NOT NULL CHECK (fee_vnd >= 0),
  checked_in_at           timestamptz,
  call_started_at         timestamptz,
  call_ended_at           timestamptz,
  cancelled_at            timestamptz,
  cancelled_by            uuid REFERENCES accounts (id),
  cancel_reason           text,
  late_cancellation       boolean NOT NULL DEFAULT false,
  refund_due              boolean NOT NULL DEFAULT false,
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now(),
  -- No double booking, settled by the database: live bookings of one doctor, of one patient and of one attending
  -- account never overlap. Cancelled bookings free their time.
  CONSTRAINT consultations_doctor_no_overlap EXCLUDE USING gist (doctor_id WITH =, slot WITH &&)
    WHERE (status NOT IN ('cancelled_by_patient', 'cancelled_by_doctor')),
  CONSTRAINT consultations_patient_no_overlap EXCLUDE USING gist (patient_id WITH =, slot WITH &&)
    WHERE (status NOT IN ('cancelled_by_patient', 'cancelled_by_doctor')),
  CONSTRAINT consultations_attendee_no_overlap EXCLUDE USING gist (booked_by WITH =, slot WITH &&)
    WHERE (status NOT IN ('cancelled_by_patient', 'cancelled_by_doctor'))
);
CREATE INDEX consultations_doctor_day ON consultations (doctor_id, lower(slot));
CREATE INDEX consultations_patient ON consultations (patient_id, lower(slot) DESC);
CREATE INDEX consultations_booked_by ON consultations (booked_by, lower(slot) DESC);
CREATE INDEX consultations_open ON consultations (lower(slot)) WHERE status IN ('booked', 'waiting');

-- Append-only history of each consultation: lifecycle transitions and call events (join, leave, reconnect...).
-- Other modules read it as events: payments watches for refund_due, notifications for booked/cancelled.
CREATE TABLE consultation_events (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  consultation_id   uuid NOT NULL REFERENCES consultations (id),
  kind              text NOT NULL CHECK (kind ~ '^[a-z_.]+$'),
  actor_account_id  uuid,
  at                timestamptz NOT NULL DEFAULT now(),
  details           jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX consultation_events_consultation ON consultation_events (consultation_id, id);
CREATE INDEX consultation_events_kind ON consultation_events (kind, id);
CREATE TRIGGER consultation_events_append_only BEFORE UPDATE OR DELETE ON consultation_events
  FOR EACH ROW EXECUTE FUNCTION forbid_change();

-- The clinical note (SOAP), written by the treating doctor only.
CREATE TABLE consultation_records (
  consultation_id  uuid PRIMARY KEY REFERENCES consultations (id),
  subjective       text NOT NULL DEFAULT '' CHECK (length(subjective) <= 10000),
  objective        text NOT NULL DEFAULT '' CHECK (length(objective) <= 10000),
  assessment       text NOT NULL DEFAULT '' CHECK (length(assessment) <= 10000),
  plan             text NOT NULL DEFAULT '' CHECK (length(plan) <= 10000),
  advice           text NOT NULL DEFAULT '' CHECK (length(advice) <= 4000),   -- what the patient reads
  follow_up_days   integer CHECK (follow_up_days BETWEEN 1 AND 365),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consultation_diagnoses (
  consultation_id  uuid NOT NULL REFERENCES consultations (id),
  position         smallint NOT NULL CHECK (position BETWEEN 1 AND 20),
  code             text NOT NULL REFERENCES icd10_codes (code),
  name             text NOT NULL,
  is_principal     boolean NOT NULL,
  PRIMARY KEY (consultation_id, position)
);
CREATE UNIQUE INDEX consultation_diagnoses_one_principal ON consultation_diagnoses (consultation_id)
  WHERE is_principal;

-- Call-quality samples posted by the clients every ~10 s (RTT, loss, jitter, bitrate from getStats).
CREATE TABLE call_quality_samples (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  consultation_id  uuid NOT NULL REFERENCES consultations (id),
  role             text NOT NULL CHECK (role IN ('patient', 'doctor')),
  at               timestamptz NOT NULL DEFAULT now(),
  rtt_ms           real CHECK (rtt_ms >= 0),
  jitter_ms        real CHECK (jitter_ms >= 0),
  loss_pct         real CHECK (loss_pct BETWEEN 0 AND 100),
  out_kbps         real CHECK (out_kbps >= 0),
  in_kbps          real CHECK (in_kbps >= 0)
);
CREATE INDEX call_quality_samples_consultation ON call_quality_samples (consultation_id, at);

-- ICD-10 demo subset. Codes and English titles: WHO ICD-10 (2019). Vietnamese titles: our translation for the
-- demo, to be checked against the Ministry of Health's ICD-10 edition before clinical use.
-- telemedicine_tt30: the TT 30/2023/TT-BYT codes named in the eprescription spec (TM-1); the circular lists 50
-- entries and the full list was NOT transcribed there, so codes outside this subset are treated as not allowed
-- (the safer behaviour).
INSERT INTO icd10_codes (code, title_vi, title_en, telemedicine_tt30, source) VALUES
  ('E66',   'Béo phì', 'Obesity', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('E66.9', 'Béo phì, không đặc hiệu', 'Obesity, unspecified', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('J00',   'Viêm mũi họng cấp (cảm lạnh thông thường)', 'Acute nasopharyngitis [common cold]', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('J31.1', 'Viêm mũi họng mạn tính', 'Chronic nasopharyngitis', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('K12.0', 'Loét áp-tơ miệng tái phát', 'Recurrent oral aphthae', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('K14.1', 'Lưỡi bản đồ', 'Geographic tongue', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('K06.9', 'Bệnh lợi và sống hàm, không đặc hiệu', 'Disorder of gingiva and edentulous alveolar ridge, unspecified', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('M25.5', 'Đau khớp', 'Pain in joint', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('M53.1', 'Hội chứng cổ - cánh tay', 'Cervicobrachial syndrome', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('M54.5', 'Đau thắt lưng', 'Low back pain', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('M05.0', 'Hội chứng Felty', 'Felty syndrome', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('M17',   'Thoái hóa khớp gối', 'Gonarthrosis [arthrosis of knee]', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('M47',   'Thoái hóa cột sống', 'Spondylosis', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('M81',   'Loãng xương không kèm gãy xương bệnh lý', 'Osteoporosis without pathological fracture', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('Z09',   'Khám theo dõi sau điều trị', 'Follow-up examination after treatment for conditions other than malignant neoplasms', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('Z08',   'Khám theo dõi sau điều trị u ác tính', 'Follow-up examination after treatment for malignant neoplasm', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('I10',   'Tăng huyết áp vô căn (nguyên phát)', 'Essential (primary) hypertension', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('I83',   'Giãn tĩnh mạch chi dưới', 'Varicose veins of lower extremities', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('I87.2', 'Suy tĩnh mạch (mạn tính) (ngoại biên)', 'Venous insufficiency (chronic) (peripheral)', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('I74.3', 'Tắc mạch và huyết khối động mạch chi dưới', 'Embolism and thrombosis of arteries of lower extremities', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('E10.9', 'Đái tháo đường phụ thuộc insulin, không có biến chứng', 'Insulin-dependent diabetes mellitus without complications', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('E11.9', 'Đái tháo đường không phụ thuộc insulin, không có biến chứng', 'Non-insulin-dependent diabetes mellitus without complications', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('E12.9', 'Đái tháo đường liên quan suy dinh dưỡng, không có biến chứng', 'Malnutrition-related diabetes mellitus without complications', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('E13.9', 'Đái tháo đường xác định khác, không có biến chứng', 'Other specified diabetes mellitus without complications', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('E14.9', 'Đái tháo đường không đặc hiệu, không có biến chứng', 'Unspecified diabetes mellitus without complications', true, 'WHO ICD-10 2019; TT 30/2023/TT-BYT (spec TM-1)'),
  ('J02.9', 'Viêm họng cấp, không đặc hiệu', 'Acute pharyngitis, unspecified', false, 'WHO ICD-10 2019'),
  ('J03.9', 'Viêm amidan cấp, không đặc hiệu', 'Acute tonsillitis, unspecified', false, 'WHO ICD-10 2019'),
  ('J06.9', 'Nhiễm trùng đường hô hấp trên cấp, không đặc hiệu', 'Acute upper respiratory infection, unspecified', false, 'WHO ICD-10 2019'),
  ('J20.9', 'Viêm phế quản cấp, không đặc hiệu', 'Acute bronchitis, unspecified', false, 'WHO ICD-10 2019'),
  ('J18.9', 'Viêm phổi, không đặc hiệu', 'Pneumonia, unspecified', false, 'WHO ICD-10 2019'),
  ('J45.9', 'Hen phế quản, không đặc hiệu', 'Asthma, unspecified', false, 'WHO ICD-10 2019'),
  ('J30.4', 'Viêm mũi dị ứng, không đặc hiệu', 'Allergic rhinitis, unspecified', false, 'WHO ICD-10 2019'),
  ('A09',   'Tiêu chảy và viêm dạ dày ruột do nhiễm trùng', 'Diarrhoea and gastroenteritis of presumed infectious origin', false, 'WHO ICD-10 2019'),
  ('A90',   'Sốt Dengue (sốt xuất huyết cổ điển)', 'Dengue fever [classical dengue]', false, 'WHO ICD-10 2019'),
  ('B08.4', 'Bệnh tay chân miệng do virus đường ruột', 'Enteroviral vesicular stomatitis with exanthem (hand, foot and mouth disease)', false, 'WHO ICD-10 2019'),
  ('B34.9', 'Nhiễm virus, không đặc hiệu', 'Viral infection, unspecified', false, 'WHO ICD-10 2019'),
  ('K21.9', 'Bệnh trào ngược dạ dày - thực quản không viêm thực quản', 'Gastro-oesophageal reflux disease without oesophagitis', false, 'WHO ICD-10 2019'),
  ('K29.7', 'Viêm dạ dày, không đặc hiệu', 'Gastritis, unspecified', false, 'WHO ICD-10 2019'),
  ('K59.0', 'Táo bón', 'Constipation', false, 'WHO ICD-10 2019'),
  ('L20.9', 'Viêm da cơ địa, không đặc hiệu', 'Atopic dermatitis, unspecified', false, 'WHO ICD-10 2019'),
  ('L50.9', 'Mày đay, không đặc hiệu', 'Urticaria, unspecified', false, 'WHO ICD-10 2019'),
  ('L70.0', 'Trứng cá thông thường', 'Acne vulgaris', false, 'WHO ICD-10 2019'),
  ('H10.9', 'Viêm kết mạc, không đặc hiệu', 'Conjunctivitis, unspecified', false, 'WHO ICD-10 2019'),
  ('H66.9', 'Viêm tai giữa, không đặc hiệu', 'Otitis media, unspecified', false, 'WHO ICD-10 2019'),
  ('N39.0', 'Nhiễm trùng đường tiết niệu, vị trí không xác định', 'Urinary tract infection, site not specified', false, 'WHO ICD-10 2019'),
  ('E78.5', 'Tăng lipid máu, không đặc hiệu', 'Hyperlipidaemia, unspecified', false, 'WHO ICD-10 2019'),
  ('E03.9', 'Suy giáp, không đặc hiệu', 'Hypothyroidism, unspecified', false, 'WHO ICD-10 2019'),
  ('F41.1', 'Rối loạn lo âu lan tỏa', 'Generalized anxiety disorder', false, 'WHO ICD-10 2019'),
  ('F32.9', 'Giai đoạn trầm cảm, không đặc hiệu', 'Depressive episode, unspecified', false, 'WHO ICD-10 2019'),
  ('G43.9', 'Đau nửa đầu (migraine), không đặc hiệu', 'Migraine, unspecified', false, 'WHO ICD-10 2019'),
  ('R05',   'Ho', 'Cough', false, 'WHO ICD-10 2019'),
  ('R50.9', 'Sốt, không đặc hiệu', 'Fever, unspecified', false, 'WHO ICD-10 2019'),
  ('R51',   'Đau đầu', 'Headache', false, 'WHO ICD-10 2019'),
  ('E44.0', 'Suy dinh dưỡng protein - năng lượng mức độ vừa', 'Moderate protein-energy malnutrition', false, 'WHO ICD-10 2019'),
  ('Z00.1', 'Khám sức khỏe định kỳ trẻ em', 'Routine child health examination', false, 'WHO ICD-10 2019'),
  ('Z23',   'Cần tiêm chủng phòng một bệnh nhiễm khuẩn đơn lẻ', 'Need for immunization against single bacterial diseases', false, 'WHO ICD-10 2019'),
  ('Z71.3', 'Tư vấn và theo dõi chế độ ăn', 'Dietary counselling and surveillance', false, 'WHO ICD-10 2019');
