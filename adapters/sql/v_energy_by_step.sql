-- The energy of the state after each step (a rejected step keeps the previous energy).
-- Columns: run_id, step, energy
SELECT run_id, step, energy FROM v_steps
