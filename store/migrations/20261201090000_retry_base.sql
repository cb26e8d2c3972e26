-- Attempts keep counting across `retry`/re-queues (a resumed run is attempt 2, 3, ..., and a
-- lease of an earlier attempt can never match a later one); the retry budget counts from the
-- last manual re-queue instead: `attempts - retry_base`.
ALTER TABLE runs ADD COLUMN retry_base INTEGER NOT NULL DEFAULT 0;
