-- Per-run metrics of the steps, computed from v_steps at query time, for the runs the materialised
-- table mat_run_stats does not hold (yet): runs in flight or left incomplete, and a finished run in
-- the transaction that adds its row (mat_run_stats.sql). The definition behind mat_run_stats, and so
-- behind v_run_stats, v_delta_f90 and v_step_stats.
-- ΔF_q (q = 0.9, 0.99) is the first step k (step 0 = the initial state) with
--     E_k ≤ E_0 − q·(E_0 − min_j E_j)
-- over the energies of v_steps (a rejected step keeps the previous energy); NULL when the energy
-- never drops below E_0. accepted_steps counts accepted steps after step 0; rejected_steps every
-- step whose proposal was not kept; the step-size columns describe α of the accepted steps after
-- step 0. The mean runs in step order, so recomputing it gives the same float bit for bit.
-- Columns: run_id, e0, e_min, delta_f90, delta_f99, accepted_steps, rejected_steps, total_backtracks, mean_step_size, min_step_size, max_step_size
WITH steps AS (
    SELECT * FROM v_steps WHERE run_id NOT IN (SELECT run_id FROM mat_run_stats)
), ends AS (
    SELECT run_id, arg_min(energy, step) AS e0, min(energy) AS e_min
    FROM steps
    GROUP BY run_id
)
SELECT
    s.run_id,
    e.e0,
    e.e_min,
    min(s.step) FILTER (WHERE e.e_min < e.e0 AND s.energy <= e.e0 - 0.9 * (e.e0 - e.e_min)) AS delta_f90,
    min(s.step) FILTER (WHERE e.e_min < e.e0 AND s.energy <= e.e0 - 0.99 * (e.e0 - e.e_min)) AS delta_f99,
    count(*) FILTER (WHERE s.accepted AND s.step > 0) AS accepted_steps,
    count(*) FILTER (WHERE NOT s.accepted) AS rejected_steps,
    coalesce(sum(s.backtracks), 0)::BIGINT AS total_backtracks,
    avg(s.step_size ORDER BY s.step) FILTER (WHERE s.accepted AND s.step > 0) AS mean_step_size,
    min(s.step_size) FILTER (WHERE s.accepted AND s.step > 0) AS min_step_size,
    max(s.step_size) FILTER (WHERE s.accepted AND s.step > 0) AS max_step_size
FROM steps AS s
JOIN ends AS e ON e.run_id = s.run_id
GROUP BY s.run_id, e.e0, e.e_min
