-- Every run deleted from the store (cfc rm, store.delete_runs): which run, how many events it had, when.
-- Columns: run_id, events, deleted_at
SELECT run_id, events, deleted_at FROM deletions ORDER BY deleted_at, run_id
