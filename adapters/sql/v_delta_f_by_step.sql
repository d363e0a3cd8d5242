-- ΔF per step: energy(step) − energy(step − 1); NULL at step 0. A rejected step keeps the previous
-- energy, so its ΔF is 0; a descent run has ΔF ≤ 0 at every step.
-- Columns: run_id, step, energy, delta_f
SELECT
    run_id,
    step,
    energy,
    energy - lag(energy) OVER (PARTITION BY run_id ORDER BY step) AS delta_f
FROM v_steps
