-- Schema 1 (SQLite): one events table, the counters (dropped events), indexes for the report.
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    model_id TEXT,
    face TEXT,
    substitute TEXT,
    score REAL,
    bytes INTEGER,
    duration_ms INTEGER,
    retries INTEGER,
    rate REAL,
    result TEXT,
    detail TEXT,
    source_key TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS events_kind_ts ON events (kind, ts_ms);
CREATE INDEX IF NOT EXISTS events_model_ts ON events (model_id, ts_ms);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
