"""Blocked pair search against brute force: same pairs, same order, any block size, threshold or limit."""

import numpy as np
import pytest

from training.ml.embedder import top_pairs


@pytest.mark.parametrize(
    ("count", "threshold", "limit", "block"),
    [(300, -1.0, 50, 100), (257, 0.0, 100_000, 100), (1000, 0.2, 7, 64), (5, 0.99, 10, 2)],
)
def test_top_pairs_are_the_brute_force_best(count, threshold, limit, block):
    rng = np.random.default_rng(count)
    vectors = rng.standard_normal((count, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = vectors @ vectors.T
    i, j = np.triu_indices(count, 1)
    passing = scores[i, j] >= threshold
    exact = sorted(zip(-scores[i, j][passing], i[passing], j[passing], strict=True))[:limit]
    found = top_pairs(vectors, threshold=threshold, limit=limit, block=block)
    assert [(a, b) for a, b, _ in found] == [(int(a), int(b)) for _, a, b in exact]
    np.testing.assert_allclose([s for _, _, s in found], [-s for s, _, _ in exact], atol=1e-5)
