-- What each study found, once per `cfc experiment NAME` invocation: the verdict (held, did not hold,
-- inconclusive or measured), the hypothesis and the
-- measured result, with the whole StudyResult as JSON. The study's runs are those of v_runs with this study.
-- Columns: study, recorded_at, verdict, hypothesis, measured, run_ids (JSON list), result (JSON)
SELECT
    study,
    recorded_at,
    coalesce(result->>'$.verdict',  -- results recorded before verdicts had three values kept only held
             CASE result->>'$.held' WHEN 'true' THEN 'held' WHEN 'false' THEN 'did not hold' ELSE 'measured' END)
        AS verdict,
    result->>'$.hypothesis' AS hypothesis,
    result->>'$.measured' AS measured,
    result->'$.run_ids' AS run_ids,
    result
FROM study_results
ORDER BY recorded_at, study
