"""Speaker verification: trial lists, cosine scores, EER and minDCF, and the files that report them.

A trial list has VoxCeleb's format, one trial per line:
'1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav' (1 same speaker, 0 different).
"""
import json
import os
from dataclasses import dataclass, field

import numpy as np
import torch

from . import file_kinds, metrics, score_norm
from .embedding import NONFINITE

P_TARGET = 0.01              # the VoxCeleb challenge's minDCF prior, with C_miss = C_fa = 1


class TrialListError(ValueError):
    """A trial list that cannot be read or scored; str is one line."""


@dataclass
class VerificationResult:
    """Scores of the trials whose two files could be embedded, and the metrics over them."""
    eer: float                   # equal error rate, a fraction (0..1)
    min_dcf: float               # normalised minimum detection cost at p_target, C_miss = C_fa = 1
    scores: np.ndarray           # float32 [trials scored], cosine similarity
    trials: list                 # (target 0/1, path_a, path_b) of each score
    skipped_trials: list = field(default_factory=list)    # trials naming a file that could not be embedded
    unusable_files: dict = field(default_factory=dict)    # path (as in the trial list) -> reason
    p_target: float = P_TARGET
    normalisation: str = 'none'  # or 'AS-norm, top N of M cohort embeddings': then scores are AS-norm's,
    raw_scores: np.ndarray = None    # and these the cosine scores [trials scored],
    raw_eer: float = None            # with their EER


def read_trials(path: str) -> list:
    """A VoxCeleb trial list (UTF-8, a byte-order mark allowed) -> [(target, path_a, path_b)]."""
    if not os.path.exists(path):
        raise TrialListError(f'{path}: no such trial list')
    if file_kinds.problem(path) is not None:
        raise TrialListError(f'{path}: {file_kinds.problem(path)}; a trial list is a UTF-8 text file')
    trials = []
    try:
        with open(path, encoding='utf-8-sig') as stream:
            for number, line in enumerate(stream, 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 3 or fields[0] not in ('0', '1'):
                    raise TrialListError(f'{path}:{number}: expected "1|0 path_a path_b", got {line.strip()[:80]!r}')
                trials.append((int(fields[0]), fields[1], fields[2]))
    except UnicodeDecodeError:
        raise TrialListError(f'{path}: not UTF-8 text (a binary file, or another encoding such as Latin-1); '
                             f'a trial list is UTF-8 text, "1|0 path_a path_b" per line') from None
    if not trials:
        raise TrialListError(f'{path}: no trials')
    return trials


def score_trials(trials, embedding_of: dict, p_target: float = P_TARGET, cohort: np.ndarray = None,
                 top: int = score_norm.COHORT_TOP) -> VerificationResult:
    """Cosine-score trials from embeddings already computed: embedding_of maps each trial path to
    a unit float32 [E] vector, or to a reason string when the file could not be embedded. With a
    cohort (unit rows [M, E], score_norm.read_cohort), the scores are AS-normalised over its
    `top` closest embeddings to each side (score_norm.py); the cosine scores stay in raw_scores."""
    embedding_of = {path: value if not isinstance(value, np.ndarray) or np.isfinite(value).all() else NONFINITE
                    for path, value in embedding_of.items()}
    kept, skipped, scores = [], [], []
    for trial in trials:
        first, second = embedding_of.get(trial[1]), embedding_of.get(trial[2])
        if isinstance(first, np.ndarray) and isinstance(second, np.ndarray):
            kept.append(trial)
            scores.append(float(np.dot(first, second)))
        else:
            skipped.append(trial)
    unusable = {path: value for path, value in embedding_of.items() if not isinstance(value, np.ndarray)}
    scores = np.asarray(scores, dtype=np.float32)
    targets = np.asarray([trial[0] for trial in kept], dtype=bool)
    if targets.all() or not targets.any():
        raise TrialListError(f'{len(kept)} trials could be scored ({len(skipped)} skipped); '
                             f'EER needs both target and non-target trials')
    if cohort is None:
        return VerificationResult(metrics.equal_error_rate(scores, targets), metrics.minimum_dcf(scores, targets, p_target),
                                  scores, kept, skipped, unusable, p_target)
    paths = list(dict.fromkeys(path for _, first, second in kept for path in (first, second)))
    row = {path: number for number, path in enumerate(paths)}
    statistics = score_norm.top_statistics(np.stack([embedding_of[path] for path in paths]), cohort, top)
    normalised = score_norm.as_norm(scores, np.array([row[trial[1]] for trial in kept]),
                                    np.array([row[trial[2]] for trial in kept]), statistics)
    return VerificationResult(metrics.equal_error_rate(normalised, targets), metrics.minimum_dcf(normalised, targets, p_target),
                              normalised, kept, skipped, unusable, p_target,
                              f'AS-norm, top {top} of {len(cohort):,} cohort embeddings', scores,
                              metrics.equal_error_rate(scores, targets))


def evaluate_trials(encoder, trials, root: str = '', progress: bool = False, known: dict = None,
                    p_target: float = P_TARGET, cohort: np.ndarray = None,
                    top: int = score_norm.COHORT_TOP) -> VerificationResult:
    """Embed each file named by the trials once (paths relative to root) and score the trials.

    encoder: an embedding.SpeakerEncoder. trials: a trial-list path or [(target, path_a, path_b)].
    known: embeddings already computed, {trial path: unit vector}, which are not recomputed.
    cohort, top: AS-norm of the scores (score_trials).
    With a root, a trial path that leaves it (absolute, or through '..') is not embedded: it is
    reported among the files not embedded.
    """
    if isinstance(trials, (str, os.PathLike)):
        trials = read_trials(str(trials))
    embedding_of = dict(known or {})
    if root:
        embedding_of.update({path: f'outside --root {root}: trial paths are relative to it'
                             for _, first, second in trials for path in (first, second) if leaves_root(path)})
    needed = list(dict.fromkeys(path for _, first, second in trials for path in (first, second)
                                if path not in embedding_of))
    if needed:
        for index, vector, reason in encoder.stream_files([os.path.join(root, path) for path in needed], progress):
            embedding_of[needed[index]] = vector if reason is None else reason
    return score_trials(trials, embedding_of, p_target, cohort, top)


def leaves_root(path: str) -> bool:
    """Whether a trial path points outside the folder it is relative to (absolute, or up through '..')."""
    return os.path.isabs(path) or os.path.normpath(path).split(os.sep)[0] == os.pardir


def pairwise_eer(embeddings: torch.Tensor, labels: list, max_utterances: int) -> float:
    """EER (fraction) of cosine scores over every pair of the first max_utterances L2-normalised
    embeddings [n, E] (pairs grow with the square of n); labels [n] name their speakers."""
    embeddings, labels = embeddings[:max_utterances], labels[:max_utterances]
    scores = embeddings @ embeddings.T                                          # [n, n]
    codes = {label: code for code, label in enumerate(dict.fromkeys(labels))}
    codes = torch.tensor([codes[label] for label in labels])
    first, second = torch.triu_indices(len(labels), len(labels), offset=1)
    return metrics.equal_error_rate(scores[first, second].numpy(), (codes[first] == codes[second]).numpy())


def write_verification(result: VerificationResult, trial_count: int, out_dir: str) -> None:
    """scores.txt (each scored trial and its score) and verification.json in out_dir; prints the
    files not embedded and the summary."""
    with open(os.path.join(out_dir, 'scores.txt'), 'w', encoding='utf-8') as stream:
        for (target, first, second), score in zip(result.trials, result.scores):
            stream.write(f'{target} {first} {second} {score:.6f}\n')
    for path, reason in result.unusable_files.items():
        print(f'trial file not embedded: {path}: {reason}')
    summary = {'eer_percent': round(100 * result.eer, 4), 'min_dcf': round(result.min_dcf, 5),
               'p_target': result.p_target, 'c_miss': 1, 'c_false_alarm': 1, 'trials_scored': len(result.trials),
               'trials_skipped': len(result.skipped_trials), 'files_not_embedded': len(result.unusable_files),
               'score_normalisation': result.normalisation}
    if result.raw_scores is not None:
        summary['eer_percent_cosine'] = round(100 * result.raw_eer, 4)
    with open(os.path.join(out_dir, 'verification.json'), 'w', encoding='utf-8') as stream:
        json.dump(summary, stream, indent=2)
    skipped = (f' ({len(result.skipped_trials):,} skipped: they name {len(result.unusable_files):,} '
               f'files that could not be embedded)') if result.skipped_trials else ''
    normalised = (f' with {result.normalisation} (cosine scores: EER {100 * result.raw_eer:.2f} %)'
                  if result.raw_scores is not None else '')
    print(f'EER {100 * result.eer:.2f} %, minDCF(p_target {result.p_target:g}) {result.min_dcf:.4f} over '
          f'{len(result.trials):,} of {trial_count:,} trials{skipped}{normalised}')
