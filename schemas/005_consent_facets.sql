-- 005: what consent rules match, per version (docs/consent.md).
--
-- version_code     (seq, system, code): the codes version `seq` is about
--                  (for an Observation, the codings of Observation.code;
--                  computed by the fhir module). provision.code matches here.
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
    code   TEXT    NOT NULL
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
