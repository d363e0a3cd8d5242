-- η of every module after each step that changed the state (step 0 and every accepted step).
-- η at a step without a frame (snapshot mode) is not here: v_eta_steps says which steps those are.
-- Columns: run_id, step, entity_id, eta
-- Each frame's values are paired with the run's module ids by position (no join on the module index).
SELECT r.run_id, f.step, unnest(m.ids[1:len(f.eta)]) AS entity_id, unnest(f.eta) AS eta
FROM eta_lists AS f
JOIN runs AS r ON r.run_key = f.run_key
JOIN (SELECT run_key, list(module_id ORDER BY idx) AS ids FROM run_modules GROUP BY run_key) AS m
  ON m.run_key = f.run_key
