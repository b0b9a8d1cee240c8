-- 008: the values of a series (docs/architecture.md, "Search index";
-- src/store/sqlite_stats.c, $stats).
--
-- Observation/$stats reads a patient's series rows of one code in a period
-- (ix_series, keyed by pid, patient, code, sid, hi) and needs, per row, the
-- numeric value of the version it names: its value-quantity rows
-- (ix_quantity) and its component-code-value-quantity rows (ix_composite).
-- Both tables are keyed by what a search looks up (pid, then the value),
-- so "the rows of version seq" is a scan of the whole parameter. These two
-- secondary indexes make them a probe of (seq, pid). A secondary index of
-- a WITHOUT ROWID table carries the table's primary key columns, so each
-- is covering: a probe reads canon, sid, code and value (ix_quantity) or
-- code, sid, unit and value (ix_composite) from the index alone, and the
-- table is never visited.
--
-- Rows are written once, with their version, and never deleted (007): the
-- indexes cost one more B-tree insert per quantity and composite row, and
-- nothing else changes. On an existing database this migration builds them
-- from the rows there (one pass over each table, inside its transaction).

CREATE INDEX ix_quantity_seq ON ix_quantity (seq, pid);
CREATE INDEX ix_composite_seq ON ix_composite (seq, pid);
