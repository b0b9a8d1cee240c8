-- 003: patient compartments of every version, and the ledger's key rotations.
--
-- version_patient   (seq, patient): version `seq` of resource_version is in
--                   the compartment of Patient/<patient> (R4
--                   CompartmentDefinition "patient", computed by the fhir
--                   module). Access scopes filter reads on it: a version with
--                   no row is in no patient compartment. A delete keeps the
--                   compartments of the version it deletes.
-- ledger_rotation   (idx, vkey): the key-rotation entries of the ledger and
--                   the verifier key each introduces, for GET /ledger/keys.
--
-- Backfill of what earlier versions already hold: the compartment rules
-- below mirror src/fhir/compartment.c for the types served before this
-- migration (Patient: itself and link.other; Observation: subject and
-- performer; Device: patient), with relative references "Patient/<id>" only.

CREATE TABLE version_patient (
    seq     INTEGER NOT NULL,
    patient TEXT    NOT NULL,
    PRIMARY KEY (seq, patient)
) WITHOUT ROWID;
CREATE INDEX version_patient_by_patient ON version_patient (patient, seq);

CREATE TABLE ledger_rotation (
    idx  INTEGER PRIMARY KEY,
    vkey TEXT    NOT NULL
);

INSERT INTO ledger_rotation (idx, vkey)
SELECT idx, json_extract(line, '$.key') FROM ledger_entry
WHERE json_extract(line, '$.kind') = 'key-rotation';

-- the body of each version, or of the version a delete deletes
CREATE TEMP VIEW vl_003_bodies AS
SELECT v.seq AS seq, r.type AS type, r.id AS id,
       CAST(coalesce(v.body, (SELECT p.body FROM resource_version p
                              WHERE p.rid = v.rid AND p.version = v.version - 1)) AS TEXT) AS body
FROM resource_version v JOIN resource r ON r.rid = v.rid;

INSERT OR IGNORE INTO version_patient (seq, patient)
SELECT seq, id FROM vl_003_bodies WHERE type = 'Patient';

-- every candidate patient reference of each version
CREATE TEMP VIEW vl_003_refs AS
SELECT b.seq AS seq, json_extract(b.body, '$.subject.reference') AS ref
FROM vl_003_bodies b WHERE b.type = 'Observation' AND b.body IS NOT NULL
UNION ALL
SELECT b.seq, json_extract(p.value, '$.reference')
FROM vl_003_bodies b, json_each(b.body, '$.performer') p
WHERE b.type = 'Observation' AND b.body IS NOT NULL
UNION ALL
SELECT b.seq, json_extract(b.body, '$.patient.reference')
FROM vl_003_bodies b WHERE b.type = 'Device' AND b.body IS NOT NULL
UNION ALL
SELECT b.seq, json_extract(l.value, '$.other.reference')
FROM vl_003_bodies b, json_each(b.body, '$.link') l
WHERE b.type = 'Patient' AND b.body IS NOT NULL;

-- "Patient/<id>" or "Patient/<id>/_history/<v>" -> <id>
INSERT OR IGNORE INTO version_patient (seq, patient)
SELECT seq, CASE WHEN instr(substr(ref, 9), '/') > 0
                 THEN substr(ref, 9, instr(substr(ref, 9), '/') - 1)
                 ELSE substr(ref, 9) END
FROM vl_003_refs
WHERE ref GLOB 'Patient/?*' AND (ref NOT GLOB 'Patient/*/*' OR ref GLOB 'Patient/?*/_history/?*');

DROP VIEW vl_003_refs;
DROP VIEW vl_003_bodies;
