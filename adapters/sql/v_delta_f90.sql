-- ΔF90 / ΔF99: the first step k (step 0 = the initial state) with
--     E_k ≤ E_0 − q·(E_0 − min_j E_j),   q = 0.9 / 0.99,
-- over the energies of v_steps (a rejected step keeps the previous energy). Both are NULL when the
-- energy never drops below E_0 (no drop to measure); a run with no step recorded yet has no row.
-- Read from v_run_stats (materialised for finished runs).
-- Columns: run_id, e0, e_min, delta_f90, delta_f99
SELECT run_id, e0, e_min, delta_f90, delta_f99 FROM v_run_stats
