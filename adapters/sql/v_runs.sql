-- One row per run: what was relaxed, how it ended ('incomplete' if it never finished) and what people
-- call it. name, tags (JSON object), study, sweep, parent, started_at and duration_s are metadata kept
-- beside the log (run_meta): replay, re-run and diff ignore them.
-- Columns: run_id, name, system_id, system_digest, seed, solver, n_modules, package_version, status, steps,
-- final_energy, final_digest, tags, study, sweep, parent, started_at, duration_s
SELECT
    r.run_id,
    m.name,
    r.system_id,
    r.system_digest,
    r.seed,
    s.payload->>'$.config.solver' AS solver,
    r.n_modules,
    r.package_version,
    COALESCE(f.payload->>'$.status', 'incomplete') AS status,
    (f.payload->>'$.steps')::INTEGER AS steps,
    (f.payload->>'$.final_energy')::DOUBLE AS final_energy,
    f.payload->>'$.final_digest' AS final_digest,
    m.tags,
    m.study,
    m.sweep,
    COALESCE(m.parent, s.payload->>'$.parent_run_id') AS parent,
    m.started_at,
    m.duration_s
FROM runs AS r
LEFT JOIN events AS s ON s.run_id = r.run_id AND s.seq = 0
LEFT JOIN events AS f ON f.run_id = r.run_id AND f.type = 'RunFinished'
LEFT JOIN run_meta AS m ON m.run_id = r.run_id
ORDER BY r.run_key
