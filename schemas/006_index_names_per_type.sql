-- 006: search index rows are named per type, "<type>.<param>"
-- ("Observation.patient", "AuditEvent.patient"), so that a lookup of one
-- type's parameter reads only that type's rows: the accounting of
-- disclosures makes AuditEvents the most numerous resource, and their
-- "patient" rows would otherwise be read by every Observation search by
-- patient.

UPDATE idx_token SET param = (SELECT type FROM resource r WHERE r.rid = idx_token.rid) || '.' || param;
UPDATE idx_string SET param = (SELECT type FROM resource r WHERE r.rid = idx_string.rid) || '.' || param;
UPDATE idx_reference SET param = (SELECT type FROM resource r WHERE r.rid = idx_reference.rid) || '.' || param;
UPDATE idx_date SET param = (SELECT type FROM resource r WHERE r.rid = idx_date.rid) || '.' || param;
UPDATE idx_quantity SET param = (SELECT type FROM resource r WHERE r.rid = idx_quantity.rid) || '.' || param;
