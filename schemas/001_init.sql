-- 001: resources, every version of them, and search index rows.
--
-- resource          one row per (type, id): the current version. rid is the
--                   compact key the index tables point at.
-- resource_version  every version ever written, in commit order (seq). body is
--                   the exact JSON served for that version (NULL for a delete);
--                   salt is 32 random bytes kept beside it for the ledger's
--                   commitment SHA-256(salt || body).
-- idx_*             search index rows of the *current* version of a resource,
--                   replaced in the same transaction as each write.
--                   Dates are half-open ranges [lo, hi) in microseconds (UTC).

CREATE TABLE resource (
    rid          INTEGER PRIMARY KEY,
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    deleted      INTEGER NOT NULL DEFAULT 0,
    last_updated INTEGER NOT NULL,
    UNIQUE (type, id)
);

CREATE TABLE resource_version (
    seq          INTEGER PRIMARY KEY,
    rid          INTEGER NOT NULL REFERENCES resource (rid),
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    method       TEXT    NOT NULL CHECK (method IN ('POST', 'PUT', 'DELETE')),
    deleted      INTEGER NOT NULL,
    body         BLOB,
    salt         BLOB    NOT NULL,
    UNIQUE (rid, version)
);

CREATE TABLE idx_token (
    rid    INTEGER NOT NULL,
    param  TEXT    NOT NULL,
    system TEXT,
    code   TEXT    NOT NULL
);
CREATE INDEX idx_token_lookup ON idx_token (param, code, system);
CREATE INDEX idx_token_rid ON idx_token (rid);

CREATE TABLE idx_string (
    rid   INTEGER NOT NULL,
    param TEXT    NOT NULL,
    value TEXT    NOT NULL,
    norm  TEXT    NOT NULL
);
CREATE INDEX idx_string_lookup ON idx_string (param, norm);
CREATE INDEX idx_string_rid ON idx_string (rid);

CREATE TABLE idx_reference (
    rid   INTEGER NOT NULL,
    param TEXT    NOT NULL,
    ref   TEXT    NOT NULL
);
CREATE INDEX idx_reference_lookup ON idx_reference (param, ref);
CREATE INDEX idx_reference_rid ON idx_reference (rid);

CREATE TABLE idx_date (
    rid   INTEGER NOT NULL,
    param TEXT    NOT NULL,
    lo    INTEGER NOT NULL,
    hi    INTEGER NOT NULL
);
CREATE INDEX idx_date_lookup ON idx_date (param, lo);
CREATE INDEX idx_date_rid ON idx_date (rid);

CREATE TABLE idx_quantity (
    rid    INTEGER NOT NULL,
    param  TEXT    NOT NULL,
    value  REAL    NOT NULL,
    system TEXT,
    code   TEXT
);
CREATE INDEX idx_quantity_lookup ON idx_quantity (param, value);
CREATE INDEX idx_quantity_rid ON idx_quantity (rid);
