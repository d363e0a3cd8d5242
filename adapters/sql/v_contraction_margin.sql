-- The contraction margin of the step rule, 2/L − α (L the Lipschitz bound of the stability guard in
-- force, α the step size): one row per step whose StepCommitted diagnostics hold a margin, or that has
-- a MarginWarning (the margin fell below the guard's warn_margin). margin is the step's diagnostic
-- (the warning's when the step has none); warned says whether the step was warned about, threshold is
-- the warning's threshold (NULL without one); lipschitz is L from the latest StabilityBounded at or
-- before the step.
-- Columns: run_id, step, step_size, margin, warned, threshold, lipschitz
WITH warnings AS (
    SELECT
        run_id,
        step,
        (payload->>'$.margin')::DOUBLE AS margin,
        (payload->>'$.threshold')::DOUBLE AS threshold,
        (payload->>'$.step_size')::DOUBLE AS step_size
    FROM events
    WHERE type = 'MarginWarning'
), bounds AS (
    SELECT run_id, step, (payload->>'$.lipschitz')::DOUBLE AS lipschitz
    FROM events
    WHERE type = 'StabilityBounded'
), margins AS (
    SELECT
        coalesce(s.run_id, w.run_id) AS run_id,
        coalesce(s.step, w.step) AS step,
        coalesce(s.step_size, w.step_size) AS step_size,
        coalesce((s.diagnostics->>'$.margin')::DOUBLE, w.margin) AS margin,
        w.run_id IS NOT NULL AS warned,
        w.threshold
    FROM (SELECT * FROM v_steps WHERE diagnostics->>'$.margin' IS NOT NULL) AS s
    FULL OUTER JOIN warnings AS w ON w.run_id = s.run_id AND w.step = s.step
)
SELECT m.run_id, m.step, m.step_size, m.margin, m.warned, m.threshold, b.lipschitz
FROM margins AS m
ASOF LEFT JOIN bounds AS b ON b.run_id = m.run_id AND m.step >= b.step
