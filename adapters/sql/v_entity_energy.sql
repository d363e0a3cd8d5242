-- The local energy of every module at every recorded step (step 0 and every step that changed η),
-- under the module version and family weight in force at that step (v_entity_versions):
--     energy = w·W_k · f(η),   f by kind, as in entities/_modules.py and entities/_vocabulary.py:
--     landau        a η² + b η⁴ − h η
--     gate          a η² + b η⁴
--     sequence      α(1−η)² + β(1−η)⁴        connectivity: the same (alpha, beta)
--     nash          a(1−η)² + b(1−η)⁴
--     compression   a(η−t)² + b(η−t)⁴        t = target
--     polynomial    Σ_p m_p ξ^p, ξ = 2η − 1, with m = c·M: c the module's coeffs and M the Legendre
--                   polynomials' monomial coefficients (basis 'legendre', exact, up to degree 12) or
--                   the module's apc_basis rows (basis 'apc'); evaluated by Horner's rule.
-- A kind this view does not know gives NULL energy (add its formula here). Modules admitted by
-- expansion appear from the step they were added. Weight adapters and homotopy scales are not
-- applied (they change the objective, not the System): Σ energy over modules plus the couplings'
-- energies and γ·N is the System's 𝓕 at that step.
-- Columns: run_id, step, entity_id, kind, energy, f, weight
WITH legendre(k, p, m) AS (  -- P_k(ξ) = Σ_p m ξ^p
    VALUES
        (0, 0, 1.0 / 1),
        (1, 1, 1.0 / 1),
        (2, 0, -1.0 / 2), (2, 2, 3.0 / 2),
        (3, 1, -3.0 / 2), (3, 3, 5.0 / 2),
        (4, 0, 3.0 / 8), (4, 2, -15.0 / 4), (4, 4, 35.0 / 8),
        (5, 1, 15.0 / 8), (5, 3, -35.0 / 4), (5, 5, 63.0 / 8),
        (6, 0, -5.0 / 16), (6, 2, 105.0 / 16), (6, 4, -315.0 / 16), (6, 6, 231.0 / 16),
        (7, 1, -35.0 / 16), (7, 3, 315.0 / 16), (7, 5, -693.0 / 16), (7, 7, 429.0 / 16),
        (8, 0, 35.0 / 128), (8, 2, -315.0 / 32), (8, 4, 3465.0 / 64), (8, 6, -3003.0 / 32), (8, 8, 6435.0 / 128),
        (9, 1, 315.0 / 128), (9, 3, -1155.0 / 32), (9, 5, 9009.0 / 64), (9, 7, -6435.0 / 32), (9, 9, 12155.0 / 128),
        (10, 0, -63.0 / 256), (10, 2, 3465.0 / 256), (10, 4, -15015.0 / 128), (10, 6, 45045.0 / 128),
        (10, 8, -109395.0 / 256), (10, 10, 46189.0 / 256),
        (11, 1, -693.0 / 256), (11, 3, 15015.0 / 256), (11, 5, -45045.0 / 128), (11, 7, 109395.0 / 128),
        (11, 9, -230945.0 / 256), (11, 11, 88179.0 / 256),
        (12, 0, 231.0 / 1024), (12, 2, -9009.0 / 512), (12, 4, 225225.0 / 1024), (12, 6, -255255.0 / 256),
        (12, 8, 2078505.0 / 1024), (12, 10, -969969.0 / 512), (12, 12, 676039.0 / 1024)
), versions AS (
    SELECT v.*, m.idx
    FROM v_entity_versions AS v
    JOIN run_modules AS m ON m.run_key = v.run_key AND m.module_id = v.entity_id
    WHERE v.role = 'module'
), coefficients AS (  -- c_k of each polynomial version (two unnests in one SELECT pair up by position)
    SELECT
        run_key, idx, from_step, entity->>'$.basis' AS basis, entity->'$.apc_basis' AS apc_basis,
        unnest(range(json_array_length(entity, '$.coeffs')::BIGINT)) AS k,
        unnest(json_extract(entity, '$.coeffs[*]'))::DOUBLE AS c
    FROM versions
    WHERE kind = 'polynomial'
), basis AS (  -- M[k][p]: Legendre from the table above, APC from the version's own matrix
    SELECT c.run_key, c.idx, c.from_step, c.k, c.c, l.p, l.m
    FROM coefficients AS c
    JOIN legendre AS l ON l.k = c.k
    WHERE c.basis = 'legendre'
    UNION ALL
    SELECT
        run_key, idx, from_step, k, c,
        unnest(range(json_array_length(apc_basis->k::INTEGER)::BIGINT)) AS p,
        unnest(json_extract(apc_basis->k::INTEGER, '$[*]'))::DOUBLE AS m
    FROM coefficients
    WHERE basis = 'apc'
), monomials AS (  -- m_p = Σ_k c_k M[k][p]
    SELECT run_key, idx, from_step, p, sum(c * m ORDER BY k) AS m
    FROM basis
    GROUP BY run_key, idx, from_step, p
), polynomials AS (
    SELECT
        run_key, idx, from_step,
        list(coalesce(m.m, 0.0) ORDER BY d.p) AS m
    FROM (SELECT DISTINCT run_key, idx, from_step FROM monomials) AS v
    CROSS JOIN range(13) AS d(p)
    LEFT JOIN monomials AS m USING (run_key, idx, from_step, p)
    GROUP BY run_key, idx, from_step
), params AS (
    SELECT
        v.run_id, v.run_key, v.idx, v.entity_id, v.kind, v.from_step, v.to_step, v.weight,
        (v.entity->>'$.a')::DOUBLE AS a,
        (v.entity->>'$.b')::DOUBLE AS b,
        (v.entity->>'$.h')::DOUBLE AS h,
        (v.entity->>'$.alpha')::DOUBLE AS alpha,
        (v.entity->>'$.beta')::DOUBLE AS beta,
        (v.entity->>'$.target')::DOUBLE AS target,
        p.m
    FROM versions AS v
    LEFT JOIN polynomials AS p USING (run_key, idx, from_step)
), local AS (
    SELECT
        p.run_id,
        e.step,
        p.entity_id,
        p.kind,
        p.weight,
        CASE p.kind
            WHEN 'landau' THEN e.eta * e.eta * (p.a + p.b * e.eta * e.eta) - p.h * e.eta
            WHEN 'gate' THEN e.eta * e.eta * (p.a + p.b * e.eta * e.eta)
            WHEN 'sequence' THEN (1 - e.eta) * (1 - e.eta) * (p.alpha + p.beta * (1 - e.eta) * (1 - e.eta))
            WHEN 'connectivity' THEN (1 - e.eta) * (1 - e.eta) * (p.alpha + p.beta * (1 - e.eta) * (1 - e.eta))
            WHEN 'nash' THEN (1 - e.eta) * (1 - e.eta) * (p.a + p.b * (1 - e.eta) * (1 - e.eta))
            WHEN 'compression' THEN (e.eta - p.target) * (e.eta - p.target)
                * (p.a + p.b * (e.eta - p.target) * (e.eta - p.target))
            WHEN 'polynomial' THEN  -- Horner's rule, m[1] = m_0
                (((((((((((p.m[13] * e.xi + p.m[12]) * e.xi + p.m[11]) * e.xi + p.m[10]) * e.xi + p.m[9])
                * e.xi + p.m[8]) * e.xi + p.m[7]) * e.xi + p.m[6]) * e.xi + p.m[5]) * e.xi + p.m[4])
                * e.xi + p.m[3]) * e.xi + p.m[2]) * e.xi + p.m[1]
        END AS f
    FROM (SELECT run_key, step, idx, eta, 2 * eta - 1 AS xi FROM eta_values) AS e
    JOIN params AS p
        ON p.run_key = e.run_key AND p.idx = e.idx
        AND e.step >= p.from_step AND (p.to_step IS NULL OR e.step < p.to_step)
)
SELECT run_id, step, entity_id, kind, weight * f AS energy, f, weight
FROM local
