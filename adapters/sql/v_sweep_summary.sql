-- A sweep's metrics per setting, across seeds: one row per sweep and combination of axis values (the
-- seed apart), with n complete runs and the mean and sample standard deviation of each metric.
-- Metrics: final_energy and steps (v_runs), delta_f90 and delta_f99 (v_delta_f90), gate_openings
-- (v_run_summary). Columns: sweep_id, axes, n, failed, final_energy_mean, final_energy_sd, delta_f90_mean,
-- delta_f90_sd, delta_f99_mean, delta_f99_sd, steps_mean, steps_sd, gate_openings_mean, gate_openings_sd
SELECT
    p.sweep_id,
    p.axes,
    count(*) FILTER (WHERE p.status = 'complete') AS n,
    count(*) FILTER (WHERE p.status = 'failed') AS failed,
    avg(r.final_energy) AS final_energy_mean,
    stddev_samp(r.final_energy) AS final_energy_sd,
    avg(d.delta_f90) AS delta_f90_mean,
    stddev_samp(d.delta_f90) AS delta_f90_sd,
    avg(d.delta_f99) AS delta_f99_mean,
    stddev_samp(d.delta_f99) AS delta_f99_sd,
    avg(r.steps) AS steps_mean,
    stddev_samp(r.steps) AS steps_sd,
    avg(s.gate_openings) AS gate_openings_mean,
    stddev_samp(s.gate_openings) AS gate_openings_sd
FROM sweep_points AS p
LEFT JOIN v_runs AS r ON r.run_id = p.run_id AND p.status = 'complete'
LEFT JOIN v_delta_f90 AS d ON d.run_id = r.run_id
LEFT JOIN v_run_summary AS s ON s.run_id = r.run_id
GROUP BY p.sweep_id, p.axes
ORDER BY p.sweep_id, p.axes
