-- Energy-gated expansion decisions: every candidate offered, admitted ('added') or refused ('rejected').
-- Columns: run_id, step, module_id, decision, delta_f, tau, parent_id, eta
SELECT run_id, step, payload->>'$.module.id' AS module_id, 'added' AS decision,
       (payload->>'$.delta_f')::DOUBLE AS delta_f, (payload->>'$.tau')::DOUBLE AS tau,
       payload->>'$.parent_id' AS parent_id, (payload->>'$.eta')::DOUBLE AS eta
FROM events WHERE type = 'ModuleAdded'
UNION ALL
SELECT run_id, step, payload->>'$.module_id', 'rejected',
       (payload->>'$.delta_f')::DOUBLE, (payload->>'$.tau')::DOUBLE, NULL, NULL
FROM events WHERE type = 'ExpansionRejected'
