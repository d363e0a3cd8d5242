-- Redemption per run: the energy lowered by the gate-benefit terms between step 0 and the last
-- recorded step (the sum of v_gate_redemption over the run's gates: benefit_start − benefit_final,
-- > 0 when gates pulled open by a predicted benefit paid off), and which earlier modules were
-- corrected after a later gate opened (v_corrections): how many distinct modules, and their ids in
-- order. Runs without gates have redemption 0 (NULL before any η is recorded) and no corrections.
-- Columns: run_id, final_step, benefit_start, benefit_final, redemption, gates_opened, corrected_modules, corrected
WITH per_gate AS (
    SELECT
        run_id,
        sum(benefit_start) AS benefit_start,
        sum(benefit_final) AS benefit_final,
        sum(redemption) AS redemption,
        count(*) FILTER (WHERE opened) AS gates_opened
    FROM v_gate_redemption
    GROUP BY run_id
), corrected AS (
    SELECT run_id, count(DISTINCT entity_id) AS corrected_modules, list_sort(list_distinct(list(entity_id))) AS corrected
    FROM v_corrections
    GROUP BY run_id
), last_frames AS (
    SELECT run_id, max(step) AS final_step FROM eta_frames GROUP BY run_id
)
SELECT
    r.run_id,
    f.final_step,
    CASE WHEN f.final_step IS NOT NULL THEN coalesce(g.benefit_start, 0.0) END AS benefit_start,
    CASE WHEN f.final_step IS NOT NULL THEN coalesce(g.benefit_final, 0.0) END AS benefit_final,
    CASE WHEN f.final_step IS NOT NULL THEN coalesce(g.redemption, 0.0) END AS redemption,
    coalesce(g.gates_opened, 0) AS gates_opened,
    coalesce(c.corrected_modules, 0) AS corrected_modules,
    coalesce(c.corrected, []::VARCHAR[]) AS corrected
FROM runs AS r
LEFT JOIN last_frames AS f ON f.run_id = r.run_id
LEFT JOIN per_gate AS g ON g.run_id = r.run_id
LEFT JOIN corrected AS c ON c.run_id = r.run_id
