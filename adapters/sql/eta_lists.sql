-- η of each recorded frame as one list: (run_key, step, eta DOUBLE[]). The store keeps each frame compressed in
-- eta_blocks (its blob cut into rows by part) against the frames before it in its chain (adapters/_eta_codec.py);
-- a frame is decoded from its chain's key frame (base) up to it. Not a metric: eta_values and v_eta read this.
SELECT b.run_key, b.step,
       cfc_eta_decode(list(c.step ORDER BY c.step, c.part), list(c.data ORDER BY c.step, c.part)) AS eta
FROM eta_blocks AS b
JOIN eta_blocks AS c ON c.run_key = b.run_key AND c.base = b.base AND c.step <= b.step
WHERE b.part = 0
GROUP BY b.run_key, b.step
