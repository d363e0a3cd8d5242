-- η of every module after each step that changed the state (step 0 and every accepted step).
-- η at a step without a frame (snapshot mode) is not here: v_eta_steps says which steps those are.
-- Columns: run_id, step, entity_id, eta
-- Each frame's values are paired with the run's module ids by position (no join on the module index): its
-- System's ids (system_modules), then those expansion added (run_added_modules).
SELECT r.run_id, f.step, unnest(list_concat(s.ids, coalesce(a.ids, []))[1:len(f.eta)]) AS entity_id,
       unnest(f.eta) AS eta
FROM eta_lists AS f
JOIN runs AS r ON r.run_key = f.run_key
JOIN (SELECT system_digest, list(module_id ORDER BY idx) AS ids FROM system_modules GROUP BY system_digest) AS s
  ON s.system_digest = r.system_digest
LEFT JOIN (SELECT run_key, list(module_id ORDER BY idx) AS ids FROM run_added_modules GROUP BY run_key) AS a
  ON a.run_key = f.run_key
