-- Signaling instances announce themselves here every second or so (rtc/hub.py housekeeping). A participant whose
-- instance has stopped announcing (killed, frozen, cut off from the database) is marked away by any live instance,
-- so the other side is told and the reconnect grace period starts, as when a socket drops.
CREATE TABLE rtc_instances (
  instance_id  text PRIMARY KEY CHECK (length(instance_id) BETWEEN 1 AND 64),
  started_at   timestamptz NOT NULL DEFAULT now(),
  seen_at      timestamptz NOT NULL DEFAULT now()
);
