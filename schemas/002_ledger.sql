-- 002: the ledger (docs/ledger.md).
--
-- ledger_entry       one canonical JSON line per accepted write (and key
--                    rotation), idx = its position; hash = SHA-256(0x00 || line),
--                    the RFC 9162 leaf hash, which is also the entry hash that
--                    the next entry's "prev" names.
-- ledger_node        the Merkle tree's perfect-subtree nodes at level >= 1:
--                    (level L, idx i) covers leaves [i*2^L, (i+1)*2^L). Proofs
--                    and roots for any size need O(log n) of them.
-- ledger_checkpoint  every signed checkpoint (C2SP signed note), by tree size.
-- resource_version.ledger_idx  the entry that anchors each version.

CREATE TABLE ledger_entry (
    idx  INTEGER PRIMARY KEY,
    line TEXT    NOT NULL,
    hash BLOB    NOT NULL
);

CREATE TABLE ledger_node (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;

CREATE TABLE ledger_checkpoint (
    size INTEGER PRIMARY KEY,
    note TEXT    NOT NULL
);

ALTER TABLE resource_version ADD COLUMN ledger_idx INTEGER;
CREATE UNIQUE INDEX resource_version_ledger ON resource_version (ledger_idx);
