-- 005: what consent rules match, per version (docs/consent.md).
--
-- version_code     (seq, system, code, kind): the codes version `seq` is
--                  about, kind 0 (for an Observation, the codings of
--                  Observation.code; provision.code matches here), and its
--                  categories, kind 1 (Observation.category; granular SMART
--                  scopes match here). Computed by the fhir module.
-- version_time     (seq, lo, hi): the time the data covers, half-open in
--                  microseconds (an Observation's effective[x]).
--                  provision.dataPeriod matches here.
-- facets_pending   versions written before this migration, whose facets
--                  the server computes at its next start (then removes them
--                  here). Deletes have no content: a delete keeps the facets
--                  of the version it deletes, and older deletes have none.

CREATE TABLE version_code (
    seq    INTEGER NOT NULL,
    system TEXT,
    code   TEXT    NOT NULL,
    kind   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX version_code_seq ON version_code (seq, code);

CREATE TABLE version_time (
    seq INTEGER PRIMARY KEY,
    lo  INTEGER NOT NULL,
    hi  INTEGER NOT NULL
);

CREATE TABLE facets_pending (
    seq INTEGER PRIMARY KEY
);

INSERT INTO facets_pending (seq) SELECT seq FROM resource_version WHERE deleted = 0;
