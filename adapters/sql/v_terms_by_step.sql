-- The energy budget per term: at each step with a TermsRecorded event (RelaxConfig.record_terms_every),
-- every kind's weighted energy (the sum over the entities of that kind, under the objective in force:
-- adapted weights and homotopy scales included) and the norm of its gradient. A kind missing from
-- one of the two maps has NULL there.
-- Columns: run_id, step, kind, energy, grad_norm
WITH kinds AS (
    SELECT run_id, step, payload, unnest(list_distinct(list_concat(
        json_keys(payload, '$.energy'), json_keys(payload, '$.grad_norm')))) AS kind
    FROM events
    WHERE type = 'TermsRecorded'
)
SELECT
    run_id,
    step,
    kind,
    (payload->'$.energy'->>kind)::DOUBLE AS energy,
    (payload->'$.grad_norm'->>kind)::DOUBLE AS grad_norm
FROM kinds
