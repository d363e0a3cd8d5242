-- Every version of every module and coupling of each run, with the steps it is in force: a version
-- applies to the η recorded at steps from_step ≤ step < to_step (to_step NULL: until the end).
-- Versions come from the System of RunStarted (from step 0), ModuleAdded (the module and its
-- couplings, from the step of admission) and EntityRevised (from the step of the revision; changes
-- are applied at the start of their step, so the η recorded at that step already feels them).
-- weight is the effective weight w·W_k: the entity's own weight times the family weight of its kind
-- in force (System.family_weights, 1 when absent; a revision of the System itself changes them, and
-- the intervals are split there). Weightings and homotopy scales, which act on the objective
-- only, are not included. entity is the version's JSON, with every field of the entity.
-- Columns: run_id, run_key, entity_id, role ('module' | 'coupling'), kind, version, from_step, to_step, weight, entity
WITH system_versions AS (
    SELECT r.run_key, 0 AS from_step, -1 AS seq, s.system_json::JSON->'$.family_weights' AS family_weights
    FROM runs AS r
    JOIN systems AS s ON s.system_digest = r.system_digest
    UNION ALL
    SELECT r.run_key, e.step, e.seq, e.payload->'$.entity.family_weights'
    FROM events AS e
    JOIN runs AS r ON r.run_id = e.run_id
    WHERE e.type = 'EntityRevised' AND e.payload->>'$.entity_id' = r.system_id
), system_spans AS (
    SELECT
        run_key,
        from_step,
        lead(from_step) OVER (PARTITION BY run_key ORDER BY from_step, seq) AS to_step,
        family_weights
    FROM system_versions
), declared AS (  -- json_extract(…, '$.x[*]') + unnest: linear in the array (json_each is not, on a large System)
    SELECT r.run_key, 'module' AS role, 0 AS from_step, -1 AS seq,
           unnest(json_extract(s.system_json, '$.modules[*]')) AS entity
    FROM runs AS r
    JOIN systems AS s ON s.system_digest = r.system_digest
    UNION ALL
    SELECT r.run_key, 'coupling', 0, -1, unnest(json_extract(s.system_json, '$.couplings[*]'))
    FROM runs AS r
    JOIN systems AS s ON s.system_digest = r.system_digest
    UNION ALL
    SELECT r.run_key, 'module', e.step, e.seq, e.payload->'$.module'
    FROM events AS e
    JOIN runs AS r ON r.run_id = e.run_id
    WHERE e.type = 'ModuleAdded'
    UNION ALL
    SELECT r.run_key, 'coupling', e.step, e.seq, unnest(json_extract(e.payload, '$.couplings[*]'))
    FROM events AS e
    JOIN runs AS r ON r.run_id = e.run_id
    WHERE e.type = 'ModuleAdded'
    UNION ALL
    SELECT
        r.run_key,
        CASE WHEN m.module_id IS NULL THEN 'coupling' ELSE 'module' END,
        e.step,
        e.seq,
        e.payload->'$.entity'
    FROM events AS e
    JOIN runs AS r ON r.run_id = e.run_id
    LEFT JOIN run_modules AS m ON m.run_key = r.run_key AND m.module_id = e.payload->>'$.entity_id'
    WHERE e.type = 'EntityRevised' AND e.payload->>'$.entity_id' <> r.system_id
), spans AS (
    SELECT
        run_key,
        role,
        entity->>'$.id' AS entity_id,
        entity->>'$.kind' AS kind,
        (entity->>'$.version')::INTEGER AS version,
        (entity->>'$.weight')::DOUBLE AS own_weight,
        from_step,
        lead(from_step) OVER (PARTITION BY run_key, entity->>'$.id' ORDER BY from_step, seq) AS to_step,
        entity
    FROM declared
), intersected AS (  -- each entity version cut at the System versions (family weights) it overlaps
    SELECT
        e.*,
        greatest(e.from_step, w.from_step) AS start_step,
        CASE
            WHEN e.to_step IS NULL THEN w.to_step
            WHEN w.to_step IS NULL THEN e.to_step
            ELSE least(e.to_step, w.to_step)
        END AS end_step,
        coalesce((w.family_weights->>e.kind)::DOUBLE, 1.0) AS family_weight
    FROM spans AS e
    JOIN system_spans AS w ON w.run_key = e.run_key
)
SELECT
    r.run_id,
    i.run_key,
    i.entity_id,
    i.role,
    i.kind,
    i.version,
    i.start_step AS from_step,
    i.end_step AS to_step,
    i.own_weight * i.family_weight AS weight,
    i.entity
FROM intersected AS i
JOIN runs AS r ON r.run_key = i.run_key
WHERE i.end_step IS NULL OR i.start_step < i.end_step
