-- TowerLab store, what runs report while they train: metrics, manager weights, artifacts, logs,
-- and the cursors of exporters (W&B sync).

-- One point per (run, key, step): a re-sent batch is ignored, never duplicated.
-- NaN is stored as NULL (SQLite has no NaN).
-- No foreign key on the two high-volume tables: the store checks the run once per batch instead
-- of SQLite checking it once per row, and deletes their rows itself.
CREATE TABLE metric_points (
    run_id  INTEGER NOT NULL,
    key     TEXT    NOT NULL,
    step    INTEGER NOT NULL,
    value   REAL,
    wall_ms INTEGER NOT NULL,
    PRIMARY KEY (run_id, key, step)
) WITHOUT ROWID;

-- Kept up to date in the same transaction as the points, so run lists never scan points.
CREATE TABLE metric_summaries (
    run_id    INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key       TEXT    NOT NULL,
    goal      TEXT CHECK (goal IN ('minimize', 'maximize')),
    count     INTEGER NOT NULL DEFAULT 0,
    nan_count INTEGER NOT NULL DEFAULT 0,
    last      REAL,
    last_step INTEGER,
    min       REAL,
    max       REAL,
    best      REAL,
    best_step INTEGER,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

CREATE TABLE manager_weights (
    run_id   INTEGER NOT NULL,
    step     INTEGER NOT NULL,
    modality TEXT    NOT NULL,
    layer    INTEGER NOT NULL,
    expert   INTEGER NOT NULL,
    weight   REAL,
    PRIMARY KEY (run_id, step, modality, layer, expert)
) WITHOUT ROWID;

CREATE TABLE artifacts (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL CHECK (kind IN ('checkpoint', 'log', 'figure')),
    path       TEXT    NOT NULL,
    step       INTEGER,
    size_bytes INTEGER,
    created_ms INTEGER NOT NULL,
    UNIQUE (run_id, path)
);

CREATE TABLE log_lines (
    run_id  INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    level   TEXT    NOT NULL,
    text    TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

-- Where an exporter got to for a run (e.g. target 'wandb', name 'history' -> line offset).
CREATE TABLE sync_cursors (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    target TEXT    NOT NULL,
    name   TEXT    NOT NULL,
    value  TEXT    NOT NULL,
    PRIMARY KEY (run_id, target, name)
) WITHOUT ROWID;
