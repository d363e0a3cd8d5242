-- Where the η of every step is, so that a query never mistakes a missing step for a missing module:
--   'recorded'     an η frame was written at this step (v_eta has it);
--   'unchanged'    no step was accepted since the frame at frame_step, which holds this step's η;
--   'not recorded' snapshot mode: η changed since the last frame and was not written; SQL cannot
--                  see it. replay(store, run, step) or `cfc replay RUN --step K` re-runs the loop from
--                  the snapshot at frame_step and returns it bit for bit.
-- Columns: run_id, step, eta, frame_step (the frame that holds this step's η; NULL when not recorded)
WITH steps AS (
    SELECT run_id, step,
           max(CASE WHEN accepted THEN step END) OVER (PARTITION BY run_id ORDER BY step, seq) AS changed
    FROM mat_steps
)
SELECT s.run_id, s.step,
       CASE WHEN f.step = s.step THEN 'recorded'
            WHEN f.step >= coalesce(s.changed, 0) THEN 'unchanged'
            ELSE 'not recorded' END AS eta,
       CASE WHEN f.step >= coalesce(s.changed, 0) THEN f.step END AS frame_step
FROM steps AS s
ASOF LEFT JOIN (SELECT run_id, step FROM eta_frames) AS f ON f.run_id = s.run_id AND s.step >= f.step
