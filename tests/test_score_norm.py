"""AS-norm: the formula, a case where it must help, and Inference.py --cohort."""
import json
import os

import numpy as np
import pytest

from ge2e_speaker import metrics, score_norm, verification
from ge2e_speaker.embedding import EXAMPLE_CHECKPOINT

VOICES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'real_voices')


def unit(rows):
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_as_norm_is_the_symmetric_top_n_formula():
    rng = np.random.default_rng(0)
    vectors, cohort = unit(rng.standard_normal((5, 16))).astype(np.float32), unit(rng.standard_normal((40, 16))).astype(np.float32)
    statistics = score_norm.top_statistics(vectors, cohort, top=7, chunk=2)    # chunks give the same
    first, second = np.array([0, 1, 2, 3]), np.array([4, 4, 0, 1])
    raw = (vectors[first] * vectors[second]).sum(axis=1)
    expected = []
    for score, a, b in zip(raw, first, second):
        sides = [np.sort(cohort @ vectors[side])[-7:] for side in (a, b)]
        expected.append(sum((score - best.mean()) / best.std() for best in sides) / 2)
    np.testing.assert_allclose(score_norm.as_norm(raw, first, second, statistics), expected, rtol=1e-4, atol=1e-5)


def test_as_norm_puts_two_recording_channels_on_one_scale():
    """Speakers recorded on two channels: one channel makes every score high (its shared
    direction), so one threshold misjudges; the cohort's statistics remove the offset."""
    rng = np.random.default_rng(1)
    dims, channel = 64, unit(rng.standard_normal(64))
    def speaker_files(count, loud):
        identity = unit(rng.standard_normal(dims))
        return unit(identity + (1.2 if loud else 0.0) * channel + 0.9 * unit(rng.standard_normal((count, dims))))
    files, owners = [], []
    for speaker in range(40):
        files.append(speaker_files(4, loud=speaker % 2 == 0))
        owners += [speaker] * 4
    files = np.concatenate(files).astype(np.float32)
    cohort = np.concatenate([speaker_files(1, loud=number % 2 == 0) for number in range(300)]).astype(np.float32)
    pairs = [(i, j) for i in range(len(files)) for j in range(i + 1, len(files))]
    embedding_of = {str(i): files[i] for i in range(len(files))}
    trials = [(int(owners[i] == owners[j]), str(i), str(j)) for i, j in pairs]
    plain = verification.score_trials(trials, embedding_of)
    normalised = verification.score_trials(trials, embedding_of, cohort=cohort, top=50)
    assert normalised.raw_eer == plain.eer and np.array_equal(normalised.raw_scores, plain.scores)
    assert normalised.normalisation == 'AS-norm, top 50 of 300 cohort embeddings'
    assert normalised.eer < 0.7 * plain.eer, (normalised.eer, plain.eer)
    assert normalised.eer == metrics.equal_error_rate(normalised.scores, np.array([t for t, _, _ in trials], bool))


def test_inference_with_a_cohort(inference_cli, tmp_path):
    files = sorted(os.path.relpath(os.path.join(folder, name), VOICES)
                   for folder, _, names in os.walk(VOICES) for name in names if name.endswith('.flac'))
    lines = [f'{int(a.split(os.sep)[0] == b.split(os.sep)[0])} {a} {b}' for n, a in enumerate(files) for b in files[n + 1:]]
    (tmp_path / 'trials.txt').write_text('\n'.join(lines) + '\n')
    # a cohort: the embeddings of an -i run (here of the same six files, enough for a check)
    assert inference_cli('-c', EXAMPLE_CHECKPOINT, '-i', VOICES, '-o', tmp_path / 'cohort', '--no-plot')[0] == 0
    code, out, err = inference_cli('-c', EXAMPLE_CHECKPOINT, '--trials', tmp_path / 'trials.txt', '--root', VOICES,
                         '--cohort', tmp_path / 'cohort' / 'embeddings.npy', '--cohort-top', 3, '-o', tmp_path / 'out')
    assert code == 0, err
    summary = json.loads((tmp_path / 'out' / 'verification.json').read_text())
    assert summary['score_normalisation'] == 'AS-norm, top 3 of 6 cohort embeddings'
    assert 0 <= summary['eer_percent'] <= 100 and 0 <= summary['eer_percent_cosine'] <= 100
    assert 'with AS-norm, top 3 of 6 cohort embeddings (cosine scores: EER' in out
    assert (tmp_path / 'out' / 'det.png').stat().st_size > 10_000
    scores = [float(line.split()[3]) for line in (tmp_path / 'out' / 'scores.txt').read_text().splitlines()]
    assert len(scores) == 15 and min(scores) < -1.0             # standardised scores, not cosines


@pytest.mark.parametrize('make, message', [
    (lambda path: np.save(path, np.ones((10, 7), np.float32)), 'shape (10, 7), expected [cohort size, 256]'),
    (lambda path: np.save(path, np.full((10, 256), np.nan, np.float32)), 'holds NaN or infinite values'),
    (lambda path: np.save(path, np.ones((2, 256), np.float32)), '2 cohort embeddings, fewer than --cohort-top 200'),
    (lambda path: open(path, 'wb').write(b'not an array'), 'not a .npy array of embeddings'),
    (lambda path: np.save(path, np.array([{'a': 1}], dtype=object)), 'not a .npy array of embeddings'),
])
def test_a_cohort_that_cannot_be_used_is_refused_in_one_line(inference_cli, tmp_path, make, message):
    (tmp_path / 'trials.txt').write_text('1 0006/000060015.flac 0006/000060020.flac\n')
    make(str(tmp_path / 'cohort.npy'))
    code, _, err = inference_cli('-c', EXAMPLE_CHECKPOINT, '--trials', tmp_path / 'trials.txt', '--root', VOICES,
                       '--cohort', tmp_path / 'cohort.npy', '-o', tmp_path / 'out')
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_a_cohort_needs_trials(inference_cli, tmp_path):
    code, _, err = inference_cli('-c', EXAMPLE_CHECKPOINT, '-i', VOICES, '--cohort', 'c.npy', '-o', tmp_path)
    assert code == 2 and '--cohort normalises the scores of --trials' in err
