-- One row per run: what was relaxed and how it ended ('incomplete' if it never finished).
-- Columns: run_id, system_id, system_digest, seed, n_modules, package_version, status, steps, final_energy, final_digest
SELECT
    r.run_id,
    r.system_id,
    r.system_digest,
    r.seed,
    r.n_modules,
    r.package_version,
    COALESCE(f.payload->>'$.status', 'incomplete') AS status,
    (f.payload->>'$.steps')::INTEGER AS steps,
    (f.payload->>'$.final_energy')::DOUBLE AS final_energy,
    f.payload->>'$.final_digest' AS final_digest
FROM runs AS r
LEFT JOIN events AS f ON f.run_id = r.run_id AND f.type = 'RunFinished'
ORDER BY r.run_key
