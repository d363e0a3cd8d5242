-- ΔF90 / ΔF99: the first step k (step 0 = the initial state) with
--     E_k ≤ E_0 − q·(E_0 − min_j E_j),   q = 0.9 / 0.99,
-- over the energies of v_steps (a rejected step keeps the previous energy). Both are NULL when the
-- energy never drops below E_0 (no drop to measure), and for a run with no step recorded yet.
-- Columns: run_id, e0, e_min, delta_f90, delta_f99
WITH ends AS (
    SELECT
        run_id,
        arg_min(energy, step) AS e0,
        min(energy) AS e_min
    FROM v_steps
    GROUP BY run_id
)
SELECT
    e.run_id,
    e.e0,
    e.e_min,
    min(s.step) FILTER (WHERE e.e_min < e.e0 AND s.energy <= e.e0 - 0.9 * (e.e0 - e.e_min)) AS delta_f90,
    min(s.step) FILTER (WHERE e.e_min < e.e0 AND s.energy <= e.e0 - 0.99 * (e.e0 - e.e_min)) AS delta_f99
FROM ends AS e
JOIN v_steps AS s ON s.run_id = e.run_id
GROUP BY e.run_id, e.e0, e.e_min
