-- A new artifact kind, `predictions` (VQA's test-set answers for the evaluation server). SQLite
-- cannot change a CHECK constraint in place, so the table is rebuilt with its rows and ids.
CREATE TABLE artifacts_new (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL CHECK (kind IN ('checkpoint', 'log', 'figure', 'predictions')),
    path       TEXT    NOT NULL,
    step       INTEGER,
    size_bytes INTEGER,
    created_ms INTEGER NOT NULL,
    UNIQUE (run_id, path)
);

INSERT INTO artifacts_new (id, run_id, kind, path, step, size_bytes, created_ms)
    SELECT id, run_id, kind, path, step, size_bytes, created_ms FROM artifacts;

DROP TABLE artifacts;

ALTER TABLE artifacts_new RENAME TO artifacts;
