-- Every gate's η at every recorded step, with its hazard λ = −ln(1 − η) (the inverse of
-- η = 1 − e^(−λ); NULL at η = 1) and whether it is open (η ≥ the gate's threshold, from the gate
-- version in force at that step). The timeline between the events of v_gate_timeline.
-- Columns: run_id, step, gate_id, eta, hazard, is_open
SELECT
    v.run_id,
    e.step,
    v.entity_id AS gate_id,
    e.eta,
    CASE WHEN e.eta < 1 THEN -ln(1 - e.eta) END AS hazard,
    e.eta >= (v.entity->>'$.threshold')::DOUBLE AS is_open
FROM v_entity_versions AS v
JOIN run_modules AS m ON m.run_key = v.run_key AND m.module_id = v.entity_id
JOIN eta_values AS e
    ON e.run_key = v.run_key AND e.idx = m.idx
    AND e.step >= v.from_step AND (v.to_step IS NULL OR e.step < v.to_step)
WHERE v.role = 'module' AND v.kind = 'gate'
