-- The local energy of every module at every recorded step (step 0 and every step that changed η),
-- under the module version and family weight in force at that step (v_entity_versions):
--     energy = w·W_k · f(η)
-- with f the module kind's own formula (its class's energy_grad), evaluated by cfc_module_energy
-- (adapters/_kind_functions.py) once per version over the list of its η. A kind defined in the
-- user's own code works the same way; a kind the querying process has not defined (not imported)
-- gives NULL energy. Modules admitted by expansion appear from the step they were added. Weight
-- adapters and homotopy scales are not applied (they change the objective, not the System): Σ energy
-- over modules plus the couplings' energies and γ·N is the System's 𝓕 at that step.
-- Columns: run_id, step, entity_id, kind, energy, f, weight
WITH versions AS (
    SELECT v.run_id, v.run_key, v.entity_id, v.kind, v.from_step, v.to_step, v.weight, v.entity, m.idx
    FROM v_entity_versions AS v
    JOIN run_modules AS m ON m.run_key = v.run_key AND m.module_id = v.entity_id
    WHERE v.role = 'module'
), trajectories AS (  -- each version's (step, η) over the steps it is in force, as one list
    SELECT
        any_value(p.run_id) AS run_id,
        any_value(p.entity_id) AS entity_id,
        any_value(p.kind) AS kind,
        any_value(p.weight) AS weight,
        any_value(p.entity)::VARCHAR AS entity,
        list({'step': e.step, 'eta': e.eta}) AS points
    FROM eta_values AS e
    JOIN versions AS p
        ON p.run_key = e.run_key AND p.idx = e.idx
        AND e.step >= p.from_step AND (p.to_step IS NULL OR e.step < p.to_step)
    GROUP BY p.run_key, p.idx, p.from_step
), local AS (  -- two unnests in one SELECT pair up by position
    SELECT
        run_id, entity_id, kind, weight,
        unnest(points).step AS step,
        unnest(cfc_module_energy(kind, entity, [x.eta FOR x IN points])) AS f
    FROM trajectories
)
SELECT run_id, step, entity_id, kind, weight * f AS energy, f, weight
FROM local
