-- One row per run: how it ended, its energy drop, ΔF90 and step and gate counts. final_energy is
-- the energy of the returned state (RunFinished; NULL while a run is incomplete), energy_drop is
-- e0 − final_energy (positive when the energy fell), gate_openings the number of GateOpened events (a gate
-- that opens twice counts twice; v_redemption.gates_opened counts gates).
-- The step columns come from the materialised table mat_run_stats (v_delta_f90, v_step_stats).
-- Columns: run_id, status, steps, e0, final_energy, energy_drop, delta_f90, accepted_steps, rejected_steps, gate_openings
SELECT
    r.run_id,
    r.status,
    r.steps,
    d.e0,
    r.final_energy,
    d.e0 - r.final_energy AS energy_drop,
    d.delta_f90,
    coalesce(s.accepted_steps, 0) AS accepted_steps,
    coalesce(s.rejected_steps, 0) AS rejected_steps,
    coalesce(g.opened, 0) AS gate_openings
FROM v_runs AS r
LEFT JOIN v_delta_f90 AS d ON d.run_id = r.run_id
LEFT JOIN v_step_stats AS s ON s.run_id = r.run_id
LEFT JOIN (
    SELECT run_id, count(*) AS opened FROM events WHERE type = 'GateOpened' GROUP BY run_id
) AS g ON g.run_id = r.run_id
