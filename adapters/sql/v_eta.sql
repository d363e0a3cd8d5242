-- η of every module after each step that changed the state (step 0 and every accepted step).
-- Columns: run_id, step, entity_id, eta
SELECT f.run_id, f.step, m.module_id AS entity_id, f.eta[m.idx + 1] AS eta
FROM eta_frames AS f
JOIN run_modules AS m ON m.run_id = f.run_id
