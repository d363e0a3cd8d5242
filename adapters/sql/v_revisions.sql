-- Entity revisions applied during runs: the new version and the fields that changed (JSON).
-- Columns: run_id, step, entity_id, version, changes
SELECT run_id, step, payload->>'$.entity_id' AS entity_id, (payload->>'$.version')::INTEGER AS version,
       payload->'$.changes' AS changes
FROM events WHERE type = 'EntityRevised'
