-- 004: bearer tokens (docs/security.md, "Tokens").
--
-- token   one row per opaque bearer token ever issued. The token itself is
--         never stored: hash is its keyed BLAKE2b-256 hash under the key in
--         DIR/token.key (0600, outside the database), so the database alone
--         lets nobody check a guess. id is the token's public name (list,
--         revoke, AuditEvent.agent); role and subject say who it speaks
--         for (organization: the Organization of a Practitioner's clinic
--         token, which Consents may name instead); times are microseconds
--         since the epoch (UTC), expires and revoked NULL when not set. Rows
--         are never deleted: a revoked token stays listed.

CREATE TABLE token (
    id      TEXT    PRIMARY KEY,
    hash    BLOB    NOT NULL UNIQUE,
    role    TEXT    NOT NULL CHECK (role IN ('admin', 'clinic', 'patient', 'device', 'auditor')),
    subject TEXT    NOT NULL,
    label   TEXT    NOT NULL DEFAULT '',
    organization TEXT,
    created INTEGER NOT NULL,
    expires INTEGER,
    revoked INTEGER
);
