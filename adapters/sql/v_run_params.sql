-- Every run's parameters in long form, to filter runs by any setting: the seed, every config field
-- under a dotted key (step_size, stability.cap_fraction, weighting.kind, ...), the System's own scalars
-- (system.complexity_cost, system.family_weights.quadratic) and, for Systems of at most 2,000
-- entities, every entity's scalar parameters (system.<entity id>.<field>). Values are text: cast them,
-- e.g. WHERE key = 'step_size' AND value::DOUBLE < 0.1.
-- Columns: run_id, key, value
SELECT run_id, key, value FROM run_params
