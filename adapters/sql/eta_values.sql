-- η in long form, one row per module per recorded frame: (run_key, step, idx, eta), from the decoded frames of
-- eta_lists. Not a metric: the views that read η by index read this.
SELECT run_key, step, unnest(range(len(eta)))::INTEGER AS idx, unnest(eta) AS eta
FROM eta_lists
