"""Adaptive score normalisation (AS-norm; Matejka et al., 2017, the symmetric top-N form):
each trial's cosine score is standardised by the statistics of the N cohort embeddings closest
to either side, which puts every trial on a common scale before one threshold is applied.

    s' = (s - mean_N(e, C)) / std_N(e, C) / 2 + (s - mean_N(t, C)) / std_N(t, C) / 2

where mean_N(x, C) and std_N(x, C) are the mean and standard deviation of the N highest cosine
scores of x against the cohort C: embeddings of speakers outside the trials (Inference.py -i
over other speakers' files writes them, embeddings.npy).
"""
import os

import numpy as np

COHORT_TOP = 200     # N, the default of --cohort-top (docs/inference.md: measured on held-out real speakers)


class CohortError(ValueError):
    """A cohort file that cannot be used; str is one line."""


def read_cohort(path: str, embedding_size: int, top: int) -> np.ndarray:
    """A cohort .npy (float32 [M, E], e.g. an Inference.py embeddings.npy) -> unit rows [M, E].
    Refuses another width, non-finite values, fewer than 2 rows, or top > M, in one line."""
    if not os.path.isfile(path):
        raise CohortError(f'{path}: no such cohort file; give the embeddings.npy of an Inference.py -i run over other speakers')
    try:
        cohort = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise CohortError(f'{path}: not a .npy array of embeddings ({error})') from None
    if cohort.ndim != 2 or cohort.shape[1] != embedding_size:
        raise CohortError(f'{path}: shape {cohort.shape}, expected [cohort size, {embedding_size}] (embeddings of this encoder)')
    if not np.isfinite(cohort).all():
        raise CohortError(f'{path}: holds NaN or infinite values')
    if len(cohort) < 2 or top > len(cohort):
        raise CohortError(f'{path}: {len(cohort)} cohort embeddings, fewer than --cohort-top {top} (and at least 2 are needed); '
                          f'lower --cohort-top or give a bigger cohort')
    cohort = cohort.astype(np.float32)
    return cohort / np.maximum(np.linalg.norm(cohort, axis=1, keepdims=True), 1e-12)


def top_statistics(vectors: np.ndarray, cohort: np.ndarray, top: int, chunk: int = 4096) -> tuple:
    """(mean, std) of each vector's `top` highest cosine scores against the cohort: [n], [n].
    vectors: unit [n, E]; cohort: unit [M, E]; a chunk of vectors at a time (memory chunk x M)."""
    means, stds = np.empty(len(vectors), np.float64), np.empty(len(vectors), np.float64)
    for start in range(0, len(vectors), chunk):
        scores = vectors[start:start + chunk] @ cohort.T                                          # [chunk, M]
        best = np.partition(scores, scores.shape[1] - top, axis=1)[:, -top:].astype(np.float64)   # [chunk, top]
        means[start:start + chunk] = best.mean(axis=1)
        stds[start:start + chunk] = np.maximum(best.std(axis=1), 1e-6)
    return means, stds


def as_norm(scores: np.ndarray, first: np.ndarray, second: np.ndarray, statistics: tuple) -> np.ndarray:
    """Normalised scores [T] of raw scores [T] whose two sides are rows `first`, `second` [T] of
    the embeddings that top_statistics gave (means [n], stds [n])."""
    means, stds = statistics
    scores = scores.astype(np.float64)
    return (0.5 * (scores - means[first]) / stds[first] + 0.5 * (scores - means[second]) / stds[second]).astype(np.float32)
