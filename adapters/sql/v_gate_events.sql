-- Gates opening (η reached the gate's threshold) and closing.
-- Columns: run_id, step, gate_id, event ('opened' | 'closed'), eta
SELECT
    run_id,
    step,
    payload->>'$.gate_id' AS gate_id,
    CASE type WHEN 'GateOpened' THEN 'opened' ELSE 'closed' END AS event,
    (payload->>'$.eta')::DOUBLE AS eta
FROM events
WHERE type IN ('GateOpened', 'GateClosed')
