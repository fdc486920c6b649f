"""Speaker-verification metrics on trial scores: equal error rate and minimum detection cost."""
import numpy as np


def _error_rates(scores: np.ndarray, targets: np.ndarray):
    """Miss and false-alarm rates at every threshold (accept score >= threshold), thresholds
    from above the highest score down to the lowest. Returns (p_miss, p_false_alarm)."""
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets, dtype=bool)
    if targets.all() or not targets.any():
        raise ValueError('verification metrics need both target and non-target trials')
    order = np.argsort(-scores, kind='stable')
    sorted_scores, sorted_targets = scores[order], targets[order]
    # Accepting the top k trials; only k at the end of a run of tied scores is a real threshold.
    cut = np.concatenate([[0], np.flatnonzero(np.diff(sorted_scores)) + 1, [len(scores)]])
    accepted_targets = np.concatenate([[0], np.cumsum(sorted_targets)])[cut]
    accepted_nontargets = cut - accepted_targets
    p_miss = 1.0 - accepted_targets / targets.sum()
    p_false_alarm = accepted_nontargets / (~targets).sum()
    return p_miss, p_false_alarm


def det_curve(scores, targets) -> tuple:
    """The detection error trade-off: (p_false_alarm, p_miss) at every threshold, false alarms
    falling from 1 to 0 and misses rising from 0 to 1."""
    p_miss, p_false_alarm = _error_rates(scores, targets)
    return p_false_alarm[::-1], p_miss[::-1]


def equal_error_rate(scores, targets) -> float:
    """EER (a fraction, 0..1): where the miss and false-alarm rates cross, linearly interpolated."""
    p_miss, p_false_alarm = _error_rates(scores, targets)
    difference = p_miss - p_false_alarm              # decreases from 1 to -1 along the thresholds
    index = int(np.flatnonzero(difference <= 0)[0])
    if difference[index] == 0 or index == 0:
        return float(p_miss[index])
    # Cross between index - 1 and index.
    weight = difference[index - 1] / (difference[index - 1] - difference[index])
    miss = p_miss[index - 1] + weight * (p_miss[index] - p_miss[index - 1])
    false_alarm = p_false_alarm[index - 1] + weight * (p_false_alarm[index] - p_false_alarm[index - 1])
    return float((miss + false_alarm) / 2)


def minimum_dcf(scores, targets, p_target: float = 0.01, c_miss: float = 1.0, c_false_alarm: float = 1.0) -> float:
    """Normalised minimum detection cost (NIST SRE / VoxCeleb convention)."""
    p_miss, p_false_alarm = _error_rates(scores, targets)
    cost = c_miss * p_miss * p_target + c_false_alarm * p_false_alarm * (1 - p_target)
    return float(cost.min() / min(c_miss * p_target, c_false_alarm * (1 - p_target)))
