-- Media worker: patients' pre-call connection tests, recording consent (append-only) and the recordings made with it.

-- One row per pre-call test a patient starts. The rows drive the per-account hourly limit (refused attempts, when
-- the worker was full, do not count) and keep the worker's final report after the worker has forgotten it.
CREATE TABLE precall_tests (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id   uuid NOT NULL REFERENCES accounts (id),
  status       text NOT NULL DEFAULT 'starting'
                 CHECK (status IN ('starting', 'running', 'finished', 'failed', 'refused')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  report       jsonb,
  CHECK ((status IN ('finished', 'failed')) = (report IS NOT NULL))
);
CREATE INDEX precall_tests_account ON precall_tests (account_id, created_at DESC);

-- Each participant's recording decisions for one consultation; the latest row per (consultation, role) is in
-- force. Never rewritten: the history of who agreed when is the evidence that a recording was lawful.
CREATE TABLE recording_consents (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  consultation_id  uuid NOT NULL REFERENCES consultations (id),
  role             text NOT NULL CHECK (role IN ('patient', 'doctor')),
  account_id       uuid NOT NULL REFERENCES accounts (id),
  granted          boolean NOT NULL,
  at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX recording_consents_latest ON recording_consents (consultation_id, role, id DESC);
CREATE TRIGGER recording_consents_append_only BEFORE UPDATE OR DELETE ON recording_consents
  FOR EACH ROW EXECUTE FUNCTION forbid_change();
CREATE TRIGGER recording_consents_no_truncate BEFORE TRUNCATE ON recording_consents
  FOR EACH STATEMENT EXECUTE FUNCTION forbid_change();

-- One file per participant's recorder connection: <data_dir>/recordings/<consultation>/<role>-<seq>.mkv on the
-- media worker's host. 'starting' covers the moment between admission here and the worker's answer.
CREATE TABLE consultation_recordings (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  consultation_id  uuid NOT NULL REFERENCES consultations (id),
  role             text NOT NULL CHECK (role IN ('patient', 'doctor')),
  seq              integer NOT NULL CHECK (seq >= 1),
  started_by       uuid NOT NULL REFERENCES accounts (id),
  status           text NOT NULL DEFAULT 'starting' CHECK (status IN ('starting', 'recording', 'stopped', 'failed')),
  file_path        text,
  started_at       timestamptz NOT NULL DEFAULT now(),
  ended_at         timestamptz,
  duration_s       real CHECK (duration_s >= 0),
  size_bytes       bigint CHECK (size_bytes >= 0),
  stop_reason      text,
  UNIQUE (consultation_id, role, seq),
  CHECK ((status IN ('starting', 'recording')) = (ended_at IS NULL))
);
-- One live recorder per participant: of two simultaneous offers, the second insert fails and becomes a 409.
CREATE UNIQUE INDEX consultation_recordings_one_live ON consultation_recordings (consultation_id, role)
  WHERE status IN ('starting', 'recording');
