-- One row per coordinator step (StepCommitted), accepted or rejected.
-- Columns: run_id, step, energy, pg_norm, step_size, backtracks, accepted, reason, trial_energy
SELECT
    run_id,
    step,
    (payload->>'$.energy')::DOUBLE AS energy,
    (payload->>'$.pg_norm')::DOUBLE AS pg_norm,
    (payload->>'$.step_size')::DOUBLE AS step_size,
    (payload->>'$.backtracks')::INTEGER AS backtracks,
    (payload->>'$.accepted')::BOOLEAN AS accepted,
    payload->>'$.reason' AS reason,
    (payload->>'$.trial_energy')::DOUBLE AS trial_energy
FROM events
WHERE type = 'StepCommitted'
