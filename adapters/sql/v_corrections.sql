-- Earlier modules corrected after a later gate opened: for the first opening of each gate (its first
-- GateOpened, at opened_step), every non-gate module that already existed then and whose η rose by
-- more than 1e-6 between opened_step and the last recorded step (final_step).
-- correction = eta_final − eta_at_open > 0.
-- Columns: run_id, gate_id, opened_step, entity_id, eta_at_open, final_step, eta_final, correction
WITH openings AS (
    SELECT run_id, gate_id, min(step) AS opened_step
    FROM v_gate_events
    WHERE event = 'opened'
    GROUP BY run_id, gate_id
), last_frames AS (
    SELECT run_id, max(step) AS final_step FROM eta_frames GROUP BY run_id
)
SELECT
    o.run_id,
    o.gate_id,
    o.opened_step,
    m.module_id AS entity_id,
    a.eta AS eta_at_open,
    f.final_step,
    z.eta AS eta_final,
    z.eta - a.eta AS correction
FROM openings AS o
JOIN runs AS r ON r.run_id = o.run_id
JOIN last_frames AS f ON f.run_id = o.run_id
JOIN eta_values AS a ON a.run_key = r.run_key AND a.step = o.opened_step
JOIN run_modules AS m ON m.run_key = r.run_key AND m.idx = a.idx AND m.kind <> 'gate'
JOIN eta_values AS z ON z.run_key = r.run_key AND z.step = f.final_step AND z.idx = a.idx
WHERE z.eta - a.eta > 1e-6
