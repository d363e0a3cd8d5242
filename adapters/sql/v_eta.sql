-- η of every module after each step that changed the state (step 0 and every accepted step).
-- Columns: run_id, step, entity_id, eta
SELECT r.run_id, v.step, m.module_id AS entity_id, v.eta
FROM eta_values AS v
JOIN runs AS r ON r.run_key = v.run_key
JOIN run_modules AS m ON m.run_key = v.run_key AND m.idx = v.idx
