-- Step counts and step sizes of each run. accepted_steps counts accepted steps after step 0 (the
-- initial state is not a step taken); rejected_steps counts steps whose proposal was not kept
-- (energy increase, failed Armijo search, not finite, stalled). The step-size columns describe the
-- α of the accepted steps after step 0 (NULL when there is none). Read from v_run_stats
-- (materialised for finished runs).
-- Columns: run_id, accepted_steps, rejected_steps, total_backtracks, mean_step_size, min_step_size, max_step_size
SELECT run_id, accepted_steps, rejected_steps, total_backtracks, mean_step_size, min_step_size, max_step_size
FROM v_run_stats
