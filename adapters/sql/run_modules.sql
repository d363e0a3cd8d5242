-- Each run's module ids in η order (idx): its System's modules, stored once per System digest in
-- system_modules, then the modules expansion added during the run (run_added_modules).
SELECT r.run_key, m.idx, m.module_id, m.kind
FROM runs AS r
JOIN system_modules AS m ON m.system_digest = r.system_digest
UNION ALL
SELECT run_key, idx, module_id, kind FROM run_added_modules
