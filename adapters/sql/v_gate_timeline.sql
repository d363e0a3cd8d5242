-- Every gate event with the hazard of the gate's η at that moment: λ = −ln(1 − η), the inverse of
-- η = 1 − e^(−λ); NULL when η = 1 (infinite hazard).
-- Columns: run_id, gate_id, step, event ('opened' | 'closed'), eta, hazard
SELECT
    run_id,
    gate_id,
    step,
    event,
    eta,
    CASE WHEN eta < 1 THEN -ln(1 - eta) END AS hazard
FROM v_gate_events
