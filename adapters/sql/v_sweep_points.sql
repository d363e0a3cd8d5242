-- One row per point of a sweep: the axes' values (JSON, seed apart), its run, status and why it failed.
-- Columns: sweep_id, point, run_id, seed, axes, status, attempts, reason, seconds
SELECT sweep_id, point, run_id, seed, axes, status, attempts, reason, seconds
FROM sweep_points
ORDER BY sweep_id, point
