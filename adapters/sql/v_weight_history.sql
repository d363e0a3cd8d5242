-- Every change a weighting made to the per-kind term weights (WeightsAdapted): one row per kind
-- of the new weights, with the weight before (NULL when the kind had none). The new weights are in
-- effect from the step after `step`.
-- Columns: run_id, step, weighting, kind, weight, previous
SELECT
    e.run_id,
    e.step,
    coalesce(e.payload->>'$.weighting', e.payload->>'$.adapter') AS weighting,  -- 'adapter' in schema version 1
    w.key AS kind,
    w.value::DOUBLE AS weight,
    (e.payload->'$.previous'->>w.key)::DOUBLE AS previous
FROM events AS e, json_each(e.payload, '$.weights') AS w
WHERE e.type = 'WeightsAdapted'
