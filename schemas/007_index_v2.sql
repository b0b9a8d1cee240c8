-- 007: storage v2, the search index keyed by version (docs/architecture.md,
-- "Search index").
--
-- Every index table is one WITHOUT ROWID B-tree whose key starts with what
-- a search looks up and ends with the version it describes (seq of
-- resource_version): no second index, no rowid table, and a row is written
-- once, when its version is, and never deleted. A version that is no
-- longer current (updated or deleted since) is listed in `superseded`;
-- searches skip its rows. A lookup that fixes every key column but seq
-- returns its matches in version order, so equality conditions are probes
-- and a page can stop early.
--
-- search_param   pid <-> "<type>.<param>" ("Observation.code"); pids are
--                assigned by the writer and never reused.
-- code_system    sid <-> system URI of tokens and quantities (0: none).
-- ix_token       token rows: code, system. Identifier :of-type rows are
--                stored under "<type>.<param>:of-type" with the code
--                "<type system>|<type code>|<value>".
-- ix_string      string rows: norm (vl_index_normalize) and the exact value.
--                Token :text rows (CodeableConcept.text, Coding.display)
--                are stored here under "<type>.<param>:text".
-- ix_reference   reference rows: "Type/id" or an absolute URL.
-- ix_date        date rows: the half-open range [lo, hi) in microseconds.
-- ix_quantity    quantity rows: canon 0 as sent (system, code or unit, and
--                the human unit when it differs from the code), canon 1 the
--                same value in its canonical UCUM unit when that differs
--                (src/fhir/ucum.c).
-- ix_composite   token $ quantity composites (code-value-quantity, ...):
--                the token, and the quantity in its canonical unit when it
--                has one (else as sent).
-- ix_series      the hot path of remote monitoring: (patient, code, time)
--                of every version that has all three, for "this patient's
--                readings of this code in this period" and "the latest".
-- series_span    the longest span of the series rows of a code parameter.
-- ix_sort        per version and sortable parameter: the ascending key
--                (smallest value) and the descending key (largest).
-- superseded     versions that are no longer current.
-- reindex_pending  current versions whose rows the server computes at its
--                next start (this migration's backfill; resumable: each
--                batch removes its rows here in the transaction that
--                writes their index rows).

DROP TABLE idx_token;
DROP TABLE idx_string;
DROP TABLE idx_reference;
DROP TABLE idx_date;
DROP TABLE idx_quantity;

CREATE TABLE search_param (
    pid  INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
);

CREATE TABLE code_system (
    sid INTEGER PRIMARY KEY,
    uri TEXT    NOT NULL UNIQUE
);

CREATE TABLE ix_token (
    pid  INTEGER NOT NULL,
    code TEXT    NOT NULL,
    sid  INTEGER NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (pid, code, sid, seq)
) WITHOUT ROWID;

CREATE TABLE ix_string (
    pid   INTEGER NOT NULL,
    norm  TEXT    NOT NULL,
    value TEXT    NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (pid, norm, value, seq)
) WITHOUT ROWID;

CREATE TABLE ix_reference (
    pid INTEGER NOT NULL,
    ref TEXT    NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (pid, ref, seq)
) WITHOUT ROWID;

CREATE TABLE ix_date (
    pid INTEGER NOT NULL,
    lo  INTEGER NOT NULL,
    hi  INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (pid, lo, hi, seq)
) WITHOUT ROWID;

CREATE TABLE ix_quantity (
    pid   INTEGER NOT NULL,
    canon INTEGER NOT NULL,
    sid   INTEGER NOT NULL,
    code  TEXT    NOT NULL,
    value REAL    NOT NULL,
    seq   INTEGER NOT NULL,
    unit  TEXT, -- the human unit when it differs from the code (N||unit)
    PRIMARY KEY (pid, canon, sid, code, value, seq)
) WITHOUT ROWID;

CREATE TABLE ix_composite (
    pid   INTEGER NOT NULL,
    code  TEXT    NOT NULL,
    sid   INTEGER NOT NULL,
    unit  TEXT    NOT NULL,
    value REAL    NOT NULL,
    seq   INTEGER NOT NULL,
    PRIMARY KEY (pid, code, sid, unit, value, seq)
) WITHOUT ROWID;

CREATE TABLE ix_series (
    pid     INTEGER NOT NULL,
    patient TEXT    NOT NULL,
    code    TEXT    NOT NULL,
    sid     INTEGER NOT NULL,
    hi      INTEGER NOT NULL,
    seq     INTEGER NOT NULL,
    lo      INTEGER NOT NULL, -- after the key: SQLite 3.40's integrity_check
                              -- misreads a WITHOUT ROWID column declared
                              -- between key columns
    PRIMARY KEY (pid, patient, code, sid, hi, seq)
) WITHOUT ROWID;

-- the longest time span (hi - lo) of any dated ix_series row, per pid: a
-- reading that starts before T ends before T + span, so "before T" is a
-- key range of the series too (VL_SERIES_UNDATED rows have none)
CREATE TABLE series_span (
    pid  INTEGER PRIMARY KEY,
    span INTEGER NOT NULL
);

CREATE TABLE ix_sort (
    seq INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    lo  ANY,
    hi  ANY,
    PRIMARY KEY (seq, pid)
) WITHOUT ROWID;

CREATE TABLE superseded (
    seq INTEGER PRIMARY KEY
);

-- every version but the current one of each resource
INSERT INTO superseded (seq)
SELECT v.seq FROM resource_version v JOIN resource r ON r.rid = v.rid
WHERE v.version <> r.version OR v.deleted = 1;

CREATE TABLE reindex_pending (
    seq INTEGER PRIMARY KEY
);

INSERT INTO reindex_pending (seq)
SELECT v.seq FROM resource_version v JOIN resource r ON r.rid = v.rid
WHERE v.version = r.version AND v.deleted = 0;

-- the consent facets: one B-tree instead of a table and an index, the
-- system interned (sid 0: none)
CREATE TABLE version_code_v2 (
    seq  INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    code TEXT    NOT NULL,
    sid  INTEGER NOT NULL,
    PRIMARY KEY (seq, kind, code, sid)
) WITHOUT ROWID;
INSERT INTO code_system (uri)
SELECT DISTINCT system FROM version_code WHERE system IS NOT NULL AND system <> '';
INSERT OR IGNORE INTO version_code_v2 (seq, kind, code, sid)
SELECT c.seq, c.kind, c.code, coalesce(s.sid, 0)
FROM version_code c LEFT JOIN code_system s ON s.uri = c.system;
DROP TABLE version_code;
ALTER TABLE version_code_v2 RENAME TO version_code;
