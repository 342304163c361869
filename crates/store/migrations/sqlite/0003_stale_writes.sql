-- A write computed from a copy of a trade that it did not lock sets the row
-- only if it is still at the copy's version (compare-and-set), and the rest
-- of its statements travel in the same query. Right after the set, the query
-- inserts a row here when the set wrote nothing; the check refuses that row,
-- which ends the query with an error and rolls back its savepoint. The table
-- stays empty.
CREATE TABLE stale_writes (
    refused INTEGER NOT NULL CONSTRAINT stale_write CHECK (refused = 0)
);
