-- Gating metrics per run: the number of gate modules, how many opening and closing events there
-- were, how many gates are open at the end (a gate's last event is 'opened'), the mean hazard over
-- the gate events (NULL without gate events or when every event has η = 1), and the expansion
-- metrics that the energy_gated_expansion study reads, where an expansion is a gate that opened and
-- a gate's redemption r_g is the energy its benefit terms lowered (v_gate_redemption):
--     expansions = #opened gates,   redemption_positive = Σ_g max(r_g, 0) over every gate,
--     mu_hat = expansions / redemption_positive,
--     good = #opened gates with r_g > 0,   bad = #opened gates with r_g ≤ 0,   good_bad_ratio = good / bad.
-- Padding the denominators with a small constant (1e-9, 1e-6) would turn "nothing redeemed" or "no
-- bad opening" into an enormous finite ratio; here a zero denominator gives NULL, and the counts are
-- columns of their own.
-- Columns: run_id, gates, opened, closed, open_at_end, hazard_mean, expansions, redemption_positive, mu_hat, good, bad, good_bad_ratio
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
), expansion AS (
    SELECT
        run_id,
        count(*) AS gates,
        count(*) FILTER (WHERE opened) AS expansions,
        coalesce(sum(greatest(redemption, 0.0)), 0.0) AS redemption_positive,
        count(*) FILTER (WHERE opened AND redemption > 0) AS good,
        count(*) FILTER (WHERE opened AND redemption <= 0) AS bad
    FROM v_gate_redemption
    GROUP BY run_id
)
SELECT
    r.run_id,
    coalesce(x.gates, 0) AS gates,
    coalesce(c.opened, 0) AS opened,
    coalesce(c.closed, 0) AS closed,
    coalesce(o.open_at_end, 0) AS open_at_end,
    c.hazard_mean,
    coalesce(x.expansions, 0) AS expansions,
    coalesce(x.redemption_positive, 0.0) AS redemption_positive,
    CASE WHEN x.redemption_positive > 0 THEN x.expansions / x.redemption_positive END AS mu_hat,
    coalesce(x.good, 0) AS good,
    coalesce(x.bad, 0) AS bad,
    CASE WHEN x.bad > 0 THEN x.good / x.bad END AS good_bad_ratio
FROM runs AS r
LEFT JOIN expansion AS x ON x.run_id = r.run_id
LEFT JOIN counts AS c ON c.run_id = r.run_id
LEFT JOIN open_now AS o ON o.run_id = r.run_id
