-- Per-run step metrics (see v_live_run_stats for the definitions): the rows of the materialised table
-- mat_run_stats for finished runs, and v_live_run_stats, computed at query time, for the others (in
-- flight, or left incomplete by a crash). One row per run with at least one step.
-- Columns: run_id, e0, e_min, delta_f90, delta_f99, accepted_steps, rejected_steps, total_backtracks, mean_step_size, min_step_size, max_step_size
SELECT * FROM mat_run_stats
UNION ALL
SELECT * FROM v_live_run_stats
