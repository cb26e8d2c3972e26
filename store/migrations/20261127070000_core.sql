-- TowerLab store, core tables: experiments, runs, params, workers.
-- Append-only: never edit a migration that has shipped; add a new file instead.

-- 'TLAB': marks the file as a TowerLab store so that `Store::open` can refuse foreign databases.
PRAGMA application_id = 1414283586;

CREATE TABLE experiments (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL UNIQUE,
    path         TEXT    NOT NULL,
    content_hash TEXT    NOT NULL,
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
);

CREATE TABLE runs (
    id               INTEGER PRIMARY KEY,
    experiment_id    INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    hash             TEXT    NOT NULL,
    cell_key         TEXT    NOT NULL,
    axes             TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(axes)),
    task             TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'finished', 'failed', 'crashed', 'cancelled')),
    failure_class    TEXT CHECK (failure_class IN ('nan', 'oom', 'error', 'killed')),
    failure_message  TEXT,
    worker           TEXT,
    host             TEXT,
    pid              INTEGER,
    device           TEXT,
    engine_version   TEXT,
    created_ms       INTEGER NOT NULL,
    started_ms       INTEGER,
    ended_ms         INTEGER,
    heartbeat_ms     INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    depends_on       INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    checkpoint_path  TEXT,
    checkpoint_step  INTEGER,
    progress_step    INTEGER,
    progress_total   INTEGER,
    UNIQUE (experiment_id, hash)
);
CREATE INDEX runs_by_status ON runs (status, id);
CREATE INDEX runs_by_hash ON runs (hash);
CREATE INDEX runs_by_depends_on ON runs (depends_on);

-- Flattened resolved config of a run: key "a.b.c", value as JSON text.
CREATE TABLE params (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT    NOT NULL,
    value  TEXT    NOT NULL CHECK (json_valid(value)),
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;

-- Worker processes announce themselves here so idle workers are visible too.
CREATE TABLE workers (
    id             TEXT PRIMARY KEY,
    host           TEXT    NOT NULL,
    pid            INTEGER NOT NULL,
    device         TEXT    NOT NULL,
    engine_version TEXT    NOT NULL,
    started_ms     INTEGER NOT NULL,
    seen_ms        INTEGER NOT NULL,
    run_id         INTEGER REFERENCES runs(id) ON DELETE SET NULL
);
