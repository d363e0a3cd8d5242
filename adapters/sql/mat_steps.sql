-- mat_steps: one typed row per coordinator step (StepCommitted), accepted or rejected; the table
-- behind v_steps, so the JSON payloads are parsed once, when their batch is appended.
-- Reads the new events from _cfc_events: the batch being appended, or, when catching up, the
-- logged events after each run's position.
-- Columns: run_id, seq, step, energy, pg_norm, step_size, backtracks, accepted, reason, trial_energy, diagnostics
INSERT INTO mat_steps
SELECT
    run_id,
    seq,
    step,
    (payload->>'$.energy')::DOUBLE AS energy,
    (payload->>'$.pg_norm')::DOUBLE AS pg_norm,
    (payload->>'$.step_size')::DOUBLE AS step_size,
    (payload->>'$.backtracks')::INTEGER AS backtracks,
    (payload->>'$.accepted')::BOOLEAN AS accepted,
    payload->>'$.reason' AS reason,
    (payload->>'$.trial_energy')::DOUBLE AS trial_energy,
    coalesce(payload->'$.diagnostics', '{}')::JSON AS diagnostics
FROM _cfc_events
WHERE type = 'StepCommitted'
