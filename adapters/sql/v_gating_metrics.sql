-- Gating metrics per run: the number of gate modules, how many opening and closing events there
-- were, how many gates are open at the end (a gate's last event is 'opened'), and the mean hazard
-- over the gate events (NULL without gate events or when every event has η = 1). μ̂ and the
-- good/bad expansion ratio need expansion events, which the log does not record yet.
-- Columns: run_id, gates, opened, closed, open_at_end, hazard_mean
WITH last_events AS (
    SELECT run_id, gate_id, arg_max(event, step) AS last_event
    FROM v_gate_timeline
    GROUP BY run_id, gate_id
), open_now AS (
    SELECT run_id, count(*) FILTER (WHERE last_event = 'opened') AS open_at_end
    FROM last_events
    GROUP BY run_id
), counts AS (
    SELECT
        run_id,
        count(*) FILTER (WHERE event = 'opened') AS opened,
        count(*) FILTER (WHERE event = 'closed') AS closed,
        avg(hazard) AS hazard_mean
    FROM v_gate_timeline
    GROUP BY run_id
), modules AS (
    SELECT run_key, count(*) FILTER (WHERE kind = 'gate') AS gates
    FROM run_modules
    GROUP BY run_key
)
SELECT
    r.run_id,
    coalesce(m.gates, 0) AS gates,
    coalesce(c.opened, 0) AS opened,
    coalesce(c.closed, 0) AS closed,
    coalesce(o.open_at_end, 0) AS open_at_end,
    c.hazard_mean
FROM runs AS r
LEFT JOIN modules AS m ON m.run_key = r.run_key
LEFT JOIN counts AS c ON c.run_id = r.run_id
LEFT JOIN open_now AS o ON o.run_id = r.run_id
