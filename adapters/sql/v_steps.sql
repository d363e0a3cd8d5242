-- One row per coordinator step (StepCommitted), accepted or rejected; diagnostics is the step's
-- JSON object of named diagnostics (margin, noise, free_energy, primal_residual, dual_residual,
-- dispersion, confidence, …; {} when none). Read from the materialised table mat_steps, which the
-- store fills as batches are appended (see mat_steps.sql).
-- Columns: run_id, step, energy, pg_norm, step_size, backtracks, accepted, reason, trial_energy, diagnostics
SELECT run_id, step, energy, pg_norm, step_size, backtracks, accepted, reason, trial_energy, diagnostics
FROM mat_steps
