-- Cashless payments through VNPay (spec vnpay.md §6): one row per payment attempt, every state change with the
-- verified gateway data, every callback as received, and refunds. Consultation fees are paid before the booking is
-- confirmed; a pharmacy's sale may be paid at the counter (drugs are never paid in the app, TM-6).

-- A paid booking holds its slot while the patient pays; unpaid past its deadline it is released.
ALTER TABLE consultations DROP CONSTRAINT consultations_status_check;
ALTER TABLE consultations ADD CONSTRAINT consultations_status_check CHECK (status IN (
  'awaiting_payment', 'booked', 'waiting', 'in_call', 'completed',
  'cancelled_by_patient', 'cancelled_by_doctor', 'no_show', 'payment_expired'));
ALTER TABLE consultations ADD COLUMN payment_due_at timestamptz;
ALTER TABLE consultations ADD CONSTRAINT awaiting_payment_has_deadline
  CHECK (status <> 'awaiting_payment' OR payment_due_at IS NOT NULL);
ALTER TABLE consultations DROP CONSTRAINT consultations_doctor_no_overlap;
ALTER TABLE consultations DROP CONSTRAINT consultations_patient_no_overlap;
ALTER TABLE consultations DROP CONSTRAINT consultations_attendee_no_overlap;
ALTER TABLE consultations ADD CONSTRAINT consultations_doctor_no_overlap EXCLUDE USING gist (doctor_id WITH =, slot WITH &&)
  WHERE (status NOT IN ('cancelled_by_patient', 'cancelled_by_doctor', 'payment_expired'));
ALTER TABLE consultations ADD CONSTRAINT consultations_patient_no_overlap EXCLUDE USING gist (patient_id WITH =, slot WITH &&)
  WHERE (status NOT IN ('cancelled_by_patient', 'cancelled_by_doctor', 'payment_expired'));
ALTER TABLE consultations ADD CONSTRAINT consultations_attendee_no_overlap EXCLUDE USING gist (booked_by WITH =, slot WITH &&)
  WHERE (status NOT IN ('cancelled_by_patient', 'cancelled_by_doctor', 'payment_expired'));
CREATE INDEX consultations_awaiting_payment ON consultations (payment_due_at) WHERE status = 'awaiting_payment';

CREATE TABLE payments (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- one per attempt, random alphanumerics (VNPay: unique per terminal per day; '-' reportedly breaks signatures)
  txn_ref             text NOT NULL UNIQUE CHECK (txn_ref ~ '^[A-Za-z0-9]{8,40}$'),
  purpose             text NOT NULL CHECK (purpose IN ('consultation', 'dispense')),
  consultation_id     uuid REFERENCES consultations (id),
  dispense_id         uuid REFERENCES dispenses (id),
  payer_account_id    uuid REFERENCES accounts (id),              -- the app user paying; NULL at a counter
  pharmacy_id         uuid REFERENCES pharmacies (id),            -- the counter's pharmacy
  created_by          uuid NOT NULL REFERENCES accounts (id),
  amount_vnd          bigint NOT NULL CHECK (amount_vnd > 0),
  status              text NOT NULL DEFAULT 'pending' CHECK (status IN (
                        'pending', 'paid', 'failed', 'expired', 'needs_review',
                        'refund_pending', 'refunded', 'partially_refunded', 'refund_failed')),
  order_info          text NOT NULL,                               -- as sent: no patient data (P17)
  pay_url             text NOT NULL,
  create_date         char(14) NOT NULL,                          -- vnp_CreateDate as sent (querydr echoes it)
  expire_date         char(14) NOT NULL,
  expires_at          timestamptz NOT NULL,                       -- the gateway's payment window
  settle_after        timestamptz NOT NULL,                       -- expiry + grace: then reconciliation asks VNPay
  next_check_at       timestamptz,
  checks              integer NOT NULL DEFAULT 0,
  response_code       text,
  transaction_status  text,
  vnp_transaction_no  text,
  bank_code           text,
  card_type           text,
  pay_date            char(14),
  paid_at             timestamptz,
  refunded_vnd        bigint NOT NULL DEFAULT 0,
  review_reason       text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT payment_target CHECK ((purpose = 'consultation') = (consultation_id IS NOT NULL)
                                   AND (purpose = 'dispense') = (dispense_id IS NOT NULL)),
  CONSTRAINT refunds_within_amount CHECK (refunded_vnd BETWEEN 0 AND amount_vnd)
);
-- at most one attempt waiting for the customer per consultation or sale
CREATE UNIQUE INDEX payments_one_pending_consultation ON payments (consultation_id) WHERE status = 'pending';
CREATE UNIQUE INDEX payments_one_pending_dispense ON payments (dispense_id) WHERE status = 'pending';
CREATE UNIQUE INDEX payments_vnp_transaction_no ON payments (vnp_transaction_no) WHERE vnp_transaction_no IS NOT NULL;
CREATE INDEX payments_to_reconcile ON payments (settle_after) WHERE status = 'pending';
CREATE INDEX payments_consultation ON payments (consultation_id) WHERE consultation_id IS NOT NULL;
CREATE INDEX payments_dispense ON payments (dispense_id) WHERE dispense_id IS NOT NULL;
CREATE INDEX payments_review ON payments (updated_at DESC) WHERE status IN ('needs_review', 'refund_failed');

-- Every state change, with the verified gateway data that caused it. Append-only.
CREATE TABLE payment_transitions (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  payment_id    uuid NOT NULL REFERENCES payments (id),
  from_status   text NOT NULL,
  to_status     text NOT NULL,
  source        text NOT NULL CHECK (source IN ('ipn', 'querydr', 'api', 'system', 'refund')),
  gateway_data  jsonb,
  note          text,
  at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_transitions_payment ON payment_transitions (payment_id, id);
CREATE TRIGGER payment_transitions_append_only BEFORE UPDATE OR DELETE ON payment_transitions
  FOR EACH ROW EXECUTE FUNCTION forbid_change();

-- Every Return and IPN request as received (without its hash), valid or not, and what we answered: the evidence
-- when a payment is disputed. Written in its own transaction so a failed IPN still leaves a trace.
CREATE TABLE vnpay_callbacks (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  channel          text NOT NULL CHECK (channel IN ('ipn', 'return')),
  txn_ref          text,
  query            text NOT NULL,
  signature_valid  boolean NOT NULL,
  answer           text,                       -- the RspCode we gave (IPN)
  received_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX vnpay_callbacks_txn_ref ON vnpay_callbacks (txn_ref, id);
CREATE TRIGGER vnpay_callbacks_append_only BEFORE UPDATE OR DELETE ON vnpay_callbacks
  FOR EACH ROW EXECUTE FUNCTION forbid_change();

-- Refunds: requested in the transaction that makes them due (a doctor cancels, a sale is voided, an administrator
-- asks), sent to VNPay by the worker, then followed with querydr until VNPay reports them done (async, §5.9).
CREATE TABLE payment_refunds (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  payment_id          uuid NOT NULL REFERENCES payments (id),
  amount_vnd          bigint NOT NULL CHECK (amount_vnd > 0),
  full_refund         boolean NOT NULL,
  reason              text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
  requested_by        uuid REFERENCES accounts (id),               -- NULL: the system (doctor no-show, late payment)
  request_id          char(32) NOT NULL UNIQUE,                    -- vnp_RequestId, persisted before sending
  status              text NOT NULL DEFAULT 'requested' CHECK (status IN (
                        'requested', 'submitted', 'succeeded', 'failed', 'unknown')),
  attempts            integer NOT NULL DEFAULT 0,
  next_attempt_at     timestamptz NOT NULL DEFAULT now(),
  response_code       text,
  transaction_status  text,
  last_error          text,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_refunds_payment ON payment_refunds (payment_id);
CREATE INDEX payment_refunds_due ON payment_refunds (next_attempt_at) WHERE status IN ('requested', 'submitted');
-- one refund in flight per payment (VNPay answers 94 to a second one anyway)
CREATE UNIQUE INDEX payment_refunds_one_open ON payment_refunds (payment_id) WHERE status IN ('requested', 'submitted');

-- querydr is rate limited (sandbox: one call per ~5 minutes after a 94, spec §5.6): every worker process waits for
-- the same moment.
CREATE TABLE gateway_backoff (
  gateway     text PRIMARY KEY,
  not_before  timestamptz NOT NULL
);
