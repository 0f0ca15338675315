-- Notifications: push devices, per-account preferences, and the transactional outbox every module writes to in
-- the same transaction as the event that causes a message (spec notifications.md §4).

-- An app installation that can receive pushes. A token/FID identifies one installation, so registering it again
-- (after a sign-in on a shared phone) moves it to the new account instead of duplicating it.
CREATE TABLE push_devices (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  account_id       uuid NOT NULL REFERENCES accounts (id),
  -- firebase-admin 7.7 deprecates registration tokens in favour of Firebase Installation IDs (spec §3.1)
  target_kind      text NOT NULL CHECK (target_kind IN ('token', 'fid')),
  target           text NOT NULL CHECK (length(target) BETWEEN 8 AND 4096),
  platform         text NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
  app_version      text NOT NULL DEFAULT '' CHECK (length(app_version) <= 50),
  created_at       timestamptz NOT NULL DEFAULT now(),
  last_seen_at     timestamptz NOT NULL DEFAULT now(),
  -- set when FCM says the target is gone (UNREGISTERED, invalid token, SENDER_ID_MISMATCH) or the user signs out
  disabled_at      timestamptz,
  disabled_reason  text CHECK (length(disabled_reason) <= 200),
  UNIQUE (target_kind, target)
);
CREATE INDEX push_devices_account ON push_devices (account_id) WHERE disabled_at IS NULL;

-- Opt-outs. Absent row = enabled. Security messages (OTP, sign-in alerts) are not a category here: they cannot be
-- turned off.
CREATE TABLE notification_preferences (
  account_id  uuid NOT NULL REFERENCES accounts (id),
  category    text NOT NULL CHECK (category IN ('vaccination', 'appointment', 'prescription', 'payment')),
  channel     text NOT NULL CHECK (channel IN ('push', 'sms')),
  enabled     boolean NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, category, channel)
);

-- One row per message per channel. Written with INSERT ... ON CONFLICT (idempotency_key) DO NOTHING, so the
-- scheduler and retried API calls never enqueue twice; claimed by dispatchers with FOR UPDATE SKIP LOCKED.
CREATE TABLE notification_outbox (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  idempotency_key  text NOT NULL UNIQUE CHECK (length(idempotency_key) BETWEEN 1 AND 300),
  account_id       uuid NOT NULL REFERENCES accounts (id),
  kind             text NOT NULL CHECK (length(kind) BETWEEN 1 AND 60),    -- the template (notifications.templates)
  category         text NOT NULL CHECK (category IN ('security', 'call', 'appointment', 'prescription', 'payment',
                                                         'vaccination')),
  channel          text NOT NULL CHECK (channel IN ('push', 'sms')),
  -- template parameters only; never an OTP or other secret (the outbox is readable by administrators)
  params           jsonb NOT NULL DEFAULT '{}',
  -- what the message is about, e.g. 'consultation:<id>' or 'vaccination:<patient>:<dose>': cancelling a
  -- reminder cancels every pending row of its subject
  subject          text NOT NULL CHECK (length(subject) BETWEEN 1 AND 200),
  status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'retry', 'sent', 'failed', 'dead', 'cancelled',
                                       'expired')),
  available_at     timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz,                                     -- a reminder for a past event is dropped
  attempts         integer NOT NULL DEFAULT 0,
  max_attempts     integer NOT NULL CHECK (max_attempts >= 1),
  locked_until     timestamptz,                                     -- lease of the dispatcher sending it
  last_error       text,
  provider_ref     text,                                            -- FCM message name(s) / eSMS SMSID
  -- the push this SMS stands in for (fallback), so one push gets at most one fallback SMS
  fallback_for     uuid UNIQUE REFERENCES notification_outbox (id),
  sent_at          timestamptz,
  opened_at        timestamptz,                                     -- the app acknowledged it
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sent_has_time CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
  CONSTRAINT sending_has_lease CHECK (status <> 'sending' OR locked_until IS NOT NULL)
);
CREATE INDEX notification_outbox_due ON notification_outbox (available_at) WHERE status IN ('pending', 'retry');
CREATE INDEX notification_outbox_leases ON notification_outbox (locked_until) WHERE status = 'sending';
CREATE INDEX notification_outbox_account ON notification_outbox (account_id, created_at DESC);
CREATE INDEX notification_outbox_subject ON notification_outbox (subject) WHERE status IN ('pending', 'retry');
-- the daily cap counts what an account was sent today
CREATE INDEX notification_outbox_sent ON notification_outbox (account_id, sent_at) WHERE status = 'sent';
CREATE INDEX notification_outbox_dead ON notification_outbox (updated_at DESC) WHERE status IN ('dead', 'failed');
-- vaccination pushes waiting to see whether they are opened before the SMS fallback is due
CREATE INDEX notification_outbox_unopened ON notification_outbox (sent_at)
  WHERE status = 'sent' AND channel = 'push' AND category = 'vaccination' AND opened_at IS NULL;

-- Every send attempt and its outcome, for administrators reading a dead letter's history.
CREATE TABLE notification_attempts (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  outbox_id     uuid NOT NULL REFERENCES notification_outbox (id),
  attempt       integer NOT NULL,
  outcome       text NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed', 'dead', 'expired', 'cancelled',
                                                 'deferred', 'fallback')),
  error         text,
  provider_ref  text,
  at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_attempts_outbox ON notification_attempts (outbox_id, id);
