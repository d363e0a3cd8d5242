-- Every change a weight adapter made to the per-kind term weights (WeightsAdapted): one row per kind
-- of the new weights, with the weight before (NULL when the kind had none). The new weights are in
-- effect from the step after `step`.
-- Columns: run_id, step, adapter, kind, weight, previous
SELECT
    e.run_id,
    e.step,
    e.payload->>'$.adapter' AS adapter,
    w.key AS kind,
    w.value::DOUBLE AS weight,
    (e.payload->'$.previous'->>w.key)::DOUBLE AS previous
FROM events AS e, json_each(e.payload, '$.weights') AS w
WHERE e.type = 'WeightsAdapted'
