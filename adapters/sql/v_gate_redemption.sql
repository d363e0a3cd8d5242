-- Redemption per gate: how much energy the gate's benefit couplings (the edges whose kind declares
-- itself a gate benefit, AbstractCoupling.gate_benefit, such as gate_benefit and damped_gate_benefit,
-- and whose gate end i is this gate) lowered between step 0 and the last recorded step (final_step):
--     benefit(s) = Σ_edges w·W_k·φ(η_i(s), η_j(s)),   φ the edge kind's own formula,
--     redemption = benefit(0) − benefit(final_step)     (> 0: opening the gate paid off)
-- with each edge's version in force at that step (an edge admitted later counts 0 at step 0). φ is
-- evaluated by cfc_coupling_energy and the kind asked by cfc_gate_benefit
-- (adapters/_kind_functions.py); a kind the querying process has not defined is left out.
-- opened says whether the gate ever opened (GateOpened), opened_step when it first did. The benefit
-- columns are NULL for a run with no η recorded yet.
-- Columns: run_id, gate_id, opened, opened_step, final_step, benefit_start, benefit_final, redemption
WITH last_frames AS (
    SELECT run_id, max(step) AS final_step FROM eta_frames GROUP BY run_id
), points AS (
    SELECT run_id, 0 AS step, 'start' AS point FROM last_frames
    UNION ALL
    SELECT run_id, final_step, 'final' FROM last_frames
), edges AS (
    SELECT
        run_id, run_key, kind, from_step, to_step, weight, entity::VARCHAR AS entity,
        entity->>'$.i' AS gate_id,
        entity->>'$.j' AS other_id
    FROM v_entity_versions
    WHERE role = 'coupling' AND cfc_gate_benefit(kind)
), terms AS (
    SELECT
        p.run_id,
        p.point,
        e.gate_id,
        e.weight * cfc_coupling_energy(e.kind, e.entity, [x.eta], [y.eta])[1] AS energy
    FROM points AS p
    JOIN edges AS e
        ON e.run_id = p.run_id AND p.step >= e.from_step AND (e.to_step IS NULL OR p.step < e.to_step)
    JOIN run_modules AS m ON m.run_key = e.run_key AND m.module_id = e.gate_id
    JOIN eta_values AS x ON x.run_key = e.run_key AND x.step = p.step AND x.idx = m.idx
    JOIN run_modules AS n ON n.run_key = e.run_key AND n.module_id = e.other_id
    JOIN eta_values AS y ON y.run_key = e.run_key AND y.step = p.step AND y.idx = n.idx
), benefits AS (
    SELECT
        run_id,
        gate_id,
        sum(energy) FILTER (WHERE point = 'start') AS benefit_start,
        sum(energy) FILTER (WHERE point = 'final') AS benefit_final
    FROM terms
    GROUP BY run_id, gate_id
), openings AS (
    SELECT run_id, gate_id, min(step) AS opened_step
    FROM v_gate_events
    WHERE event = 'opened'
    GROUP BY run_id, gate_id
), gates AS (
    SELECT r.run_id, m.module_id AS gate_id
    FROM run_modules AS m
    JOIN runs AS r ON r.run_key = m.run_key
    WHERE m.kind = 'gate'
)
SELECT
    g.run_id,
    g.gate_id,
    o.opened_step IS NOT NULL AS opened,
    o.opened_step,
    f.final_step,
    CASE WHEN f.final_step IS NOT NULL THEN coalesce(b.benefit_start, 0.0) END AS benefit_start,
    CASE WHEN f.final_step IS NOT NULL THEN coalesce(b.benefit_final, 0.0) END AS benefit_final,
    CASE WHEN f.final_step IS NOT NULL THEN coalesce(b.benefit_start, 0.0) - coalesce(b.benefit_final, 0.0) END
        AS redemption
FROM gates AS g
LEFT JOIN last_frames AS f ON f.run_id = g.run_id
LEFT JOIN benefits AS b ON b.run_id = g.run_id AND b.gate_id = g.gate_id
LEFT JOIN openings AS o ON o.run_id = g.run_id AND o.gate_id = g.gate_id
