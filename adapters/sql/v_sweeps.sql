-- One row per sweep: its name, digest and how many of its points are complete, failed or pending.
-- Columns: sweep_id, name, digest, points, complete, failed, pending, spec (JSON)
SELECT
    s.sweep_id,
    s.name,
    s.digest,
    count(p.point) AS points,
    count(*) FILTER (WHERE p.status = 'complete') AS complete,
    count(*) FILTER (WHERE p.status = 'failed') AS failed,
    count(*) FILTER (WHERE p.status = 'pending') AS pending,
    s.spec
FROM sweeps AS s
LEFT JOIN sweep_points AS p ON p.sweep_id = s.sweep_id
GROUP BY ALL
ORDER BY s.sweep_id
