-- Failure counters behind the sign-in, OTP and verify rate limits (api/ratelimit.py), shared by every API process.
-- One row per limited identity: a fixed window that starts with the first failure and the failures counted in it.
-- The identity is an HMAC (LIENTHONG_OTP_PEPPER) of the limit's name and the client address or account id, so no
-- phone number or IP address is stored here in clear.
CREATE TABLE rate_limit_windows (
  key        bytea PRIMARY KEY CHECK (octet_length(key) = 32),
  hits       integer NOT NULL CHECK (hits > 0),
  expires_at timestamptz NOT NULL
);
-- the worker's hourly purge of windows that ended
CREATE INDEX rate_limit_windows_expires ON rate_limit_windows (expires_at);
