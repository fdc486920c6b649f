"""EER and minDCF (metrics.py) on scores with known answers and against independent computations."""
import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_curve

from ge2e_speaker import metrics
from ge2e_speaker.metrics import equal_error_rate, minimum_dcf


def test_eer_known_answers():
    # perfectly separated, perfectly reversed
    assert equal_error_rate([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0
    assert equal_error_rate([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 1.0
    # one target below one non-target of five each: at threshold 0.55 one miss and one false alarm
    targets = [0.6, 0.7, 0.8, 0.9, 0.2]
    nontargets = [0.1, 0.3, 0.4, 0.5, 0.85]
    assert equal_error_rate(targets + nontargets, [1] * 5 + [0] * 5) == pytest.approx(0.2)
    # every score tied: miss and false-alarm rates cross at one half
    assert equal_error_rate([0.5] * 6, [1, 0, 1, 0, 1, 0]) == pytest.approx(0.5)


def test_eer_of_two_gaussians():
    """Target scores N(1, 1), non-target N(-1, 1): the rates cross at 0, EER = Phi(-1) = 15.87 %."""
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(1, 1, 200_000), rng.normal(-1, 1, 200_000)])
    targets = np.repeat([1, 0], 200_000)
    assert equal_error_rate(scores, targets) == pytest.approx(norm.cdf(-1), abs=0.003)


def _sklearn_eer(scores, targets):
    """EER from sklearn's ROC: where the miss rate (1 - TPR) crosses the false-alarm rate, interpolated."""
    false_alarm, hit, _ = roc_curve(targets, scores)
    miss = 1 - hit
    index = np.flatnonzero(miss - false_alarm <= 0)[0]
    if index == 0 or miss[index] == false_alarm[index]:
        return miss[index]
    before, after = miss[index - 1] - false_alarm[index - 1], miss[index] - false_alarm[index]
    weight = before / (before - after)
    return ((1 - weight) * (miss[index - 1] + false_alarm[index - 1]) + weight * (miss[index] + false_alarm[index])) / 2


def _brute_force_dcf(scores, targets, p_target, c_miss, c_false_alarm):
    """Every threshold tried: accept score >= t for t at each distinct score and above the highest."""
    scores, targets = np.asarray(scores), np.asarray(targets, dtype=bool)
    best = np.inf
    for threshold in np.append(np.unique(scores), np.inf):
        accepted = scores >= threshold
        p_miss = np.mean(~accepted[targets])
        p_false_alarm = np.mean(accepted[~targets])
        best = min(best, c_miss * p_miss * p_target + c_false_alarm * p_false_alarm * (1 - p_target))
    return best / min(c_miss * p_target, c_false_alarm * (1 - p_target))


@pytest.mark.parametrize('seed', range(6))
def test_against_independent_computations(seed):
    rng = np.random.default_rng(seed)
    count = int(rng.integers(20, 400))
    targets = rng.random(count) < rng.uniform(0.1, 0.9)
    targets[:2] = [True, False]
    scores = rng.normal(targets * rng.uniform(0, 3), 1)
    if seed % 2:
        scores = np.round(scores, 1)          # many ties
    assert equal_error_rate(scores, targets) == pytest.approx(_sklearn_eer(scores, targets), abs=1e-9)
    for p_target, c_miss, c_false_alarm in ((0.01, 1, 1), (0.05, 1, 1), (0.5, 2, 1)):
        expected = _brute_force_dcf(scores, targets, p_target, c_miss, c_false_alarm)
        assert minimum_dcf(scores, targets, p_target, c_miss, c_false_alarm) == pytest.approx(expected, abs=1e-12)


def test_min_dcf_known_answers():
    assert minimum_dcf([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0
    # never accepting costs p_target * C_miss, which normalises to 1: the worst a detector need do
    assert minimum_dcf([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == pytest.approx(1.0)


def test_one_class_is_refused():
    with pytest.raises(ValueError):
        equal_error_rate([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError):
        minimum_dcf([0.1, 0.2], [0, 0])


def test_det_curve_runs_from_all_false_alarms_to_all_misses_through_the_eer():
    rng = np.random.default_rng(3)
    targets = np.r_[np.ones(300, bool), np.zeros(700, bool)]
    scores = np.r_[rng.normal(1, 1, 300), rng.normal(-1, 1, 700)]
    false_alarm, miss = metrics.det_curve(scores, targets)
    assert false_alarm[0] == 1 and miss[0] == 0 and false_alarm[-1] == 0 and miss[-1] == 1
    assert np.all(np.diff(false_alarm) <= 0) and np.all(np.diff(miss) >= 0)
    crossing = np.argmin(np.abs(false_alarm - miss))
    assert (false_alarm[crossing] + miss[crossing]) / 2 == pytest.approx(metrics.equal_error_rate(scores, targets), abs=0.005)
