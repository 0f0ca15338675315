-- Sale reports to the national e-prescription system (QĐ 808 API-7, spec PH-3): one per dispense, written in the
-- dispense transaction and sent after commit by the worker, like national_rx_outbox does for API-5 (API-R3).
CREATE TABLE national_sale_outbox (
  dispense_id        uuid PRIMARY KEY REFERENCES dispenses (id),
  -- the API-5 row of this prescription decides when the report may go: the national system must hold the
  -- prescription before it accepts a sale against it
  prescription_id    uuid NOT NULL REFERENCES prescriptions (id),
  payload            jsonb NOT NULL,                 -- the API-7 body, built from the sale and the pharmacy at sale time
  -- withheld: voided before it went out, never to be sent
  status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'sent', 'rejected', 'failed', 'withheld')),
  attempts           integer NOT NULL DEFAULT 0,
  next_attempt_at    timestamptz NOT NULL DEFAULT now(),
  -- a worker is sending it until then; a void meanwhile cannot know whether the report will reach the system
  leased_until       timestamptz,
  last_error         text,
  -- a 404/422's danh_sach_cac_loi, or our reason for not sending; not retried automatically
  rejection          jsonb,
  sent_at            timestamptz,
  voided_at          timestamptz,
  -- QĐ 808 has no call to withdraw or correct a sale report: a sale voided after it was reported has to be
  -- corrected by hand on the national system, and this is how an administrator finds those
  correction_needed  boolean NOT NULL GENERATED ALWAYS AS (status = 'sent' AND voided_at IS NOT NULL) STORED,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sent_has_time CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
CREATE INDEX national_sale_outbox_due ON national_sale_outbox (next_attempt_at) WHERE status = 'pending';
