-- Every event of every run, bulk η frames included, in log order.
-- Columns: run_id, seq, event_id, type, schema_version, step
SELECT run_id, seq, run_id || '/' || seq AS event_id, type, schema_version, step FROM events
UNION ALL
SELECT run_id, seq, run_id || '/' || seq AS event_id, 'EtaRecorded' AS type, schema_version, step FROM eta_frames
