-- mat_run_stats: the rows of v_live_run_stats for the finished runs that have none yet, folded in
-- bulk when the store closes or is refreshed. A finished run's log is closed, so its row never
-- changes again; until it is folded, and for runs in flight or left incomplete by a crash,
-- v_run_stats computes the row at query time from v_live_run_stats.
-- Columns: run_id, e0, e_min, delta_f90, delta_f99, accepted_steps, rejected_steps, total_backtracks, mean_step_size, min_step_size, max_step_size
INSERT INTO mat_run_stats
SELECT * FROM v_live_run_stats WHERE run_id IN (SELECT run_id FROM events WHERE type = 'RunFinished')
RETURNING run_id
