-- Video calls: single-use join tokens, who is in each call room and on which API instance, in-call chat, and the
-- outbox that carries signaling messages too large for NOTIFY between instances.

-- A join token is "<jti>.<secret>"; only the secret's SHA-256 is kept, so a database dump cannot be replayed.
CREATE TABLE call_join_tokens (
  jti              uuid PRIMARY KEY,
  secret_sha256    bytea NOT NULL CHECK (length(secret_sha256) = 32),
  consultation_id  uuid NOT NULL REFERENCES consultations (id),
  account_id       uuid NOT NULL REFERENCES accounts (id),
  role             text NOT NULL CHECK (role IN ('patient', 'doctor')),
  issued_at        timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz NOT NULL,
  consumed_at      timestamptz,
  CHECK (expires_at > issued_at AND expires_at <= issued_at + interval '120 seconds')
);
CREATE INDEX call_join_tokens_expiry ON call_join_tokens (expires_at);

-- The authoritative room state shared by every API instance: one row per (consultation, role). 'away' means the
-- socket dropped and the participant may still resume within the reconnection grace period.
CREATE TABLE rtc_presence (
  consultation_id  uuid NOT NULL REFERENCES consultations (id),
  role             text NOT NULL CHECK (role IN ('patient', 'doctor')),
  account_id       uuid NOT NULL REFERENCES accounts (id),
  session_id       text NOT NULL,
  instance_id      text NOT NULL,
  state            text NOT NULL CHECK (state IN ('connected', 'away')),
  joined_at        timestamptz NOT NULL DEFAULT now(),
  away_since       timestamptz,
  PRIMARY KEY (consultation_id, role),
  CHECK ((state = 'away') = (away_since IS NOT NULL))
);
CREATE INDEX rtc_presence_away ON rtc_presence (away_since) WHERE state = 'away';

-- In-call (and waiting-room) chat is part of the consultation's history: kept, never edited.
CREATE TABLE call_chat_messages (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  consultation_id    uuid NOT NULL REFERENCES consultations (id),
  sender_role        text NOT NULL CHECK (sender_role IN ('patient', 'doctor')),
  sender_account_id  uuid NOT NULL REFERENCES accounts (id),
  body               text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
  sent_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX call_chat_messages_consultation ON call_chat_messages (consultation_id, id);
CREATE TRIGGER call_chat_messages_append_only BEFORE UPDATE OR DELETE ON call_chat_messages
  FOR EACH ROW EXECUTE FUNCTION forbid_change();

-- NOTIFY payloads must stay under 8000 bytes; larger signaling messages (browser SDP can be) are stored here and
-- the notification carries the row id. Rows live about a minute and are worthless after a crash: UNLOGGED skips
-- the WAL.
CREATE UNLOGGED TABLE rtc_signal_outbox (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  body        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rtc_signal_outbox_created ON rtc_signal_outbox (created_at);

-- getStats' outbound-rtp qualityLimitationReason: tells "your phone is too slow" from "your network is too slow".
ALTER TABLE call_quality_samples
  ADD COLUMN quality_limitation text CHECK (quality_limitation IN ('none', 'cpu', 'bandwidth', 'other'));
