-- Schema 1 (PostgreSQL): one events table, the counters (dropped events), indexes for the report.
CREATE TABLE IF NOT EXISTS events (
    id BIGSERIAL PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    model_id TEXT,
    face TEXT,
    substitute TEXT,
    score DOUBLE PRECISION,
    bytes BIGINT,
    duration_ms BIGINT,
    retries BIGINT,
    rate DOUBLE PRECISION,
    result TEXT,
    detail TEXT,
    source_key TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS events_kind_ts ON events (kind, ts_ms);
CREATE INDEX IF NOT EXISTS events_model_ts ON events (model_id, ts_ms);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
