"""The demo corpus's trial list: VoxCeleb-style target and non-target pairs of held-out files."""
import os

import numpy as np


def build_trials(files_by_speaker: dict, per_speaker: int, seed: int) -> list:
    """VoxCeleb-style trials (label, enrolment, test) with label 1 for the same speaker, 0 otherwise.

    files_by_speaker: speaker -> its files (paths as the trial list shows them, 'id10270/<video>/00001.wav');
    the video is the folder above the file. Per speaker, up to per_speaker target trials (pairs from
    different videos first, then from the same video) and as many non-target trials, each against a
    random file of another speaker; no trial twice. Deterministic for a seed.
    """
    rng = np.random.default_rng([seed, 4])
    speakers = sorted(files_by_speaker)
    trials, chosen = [], set()
    for speaker in speakers:
        files = sorted(files_by_speaker[speaker])
        pairs = [(a, b) for i, a in enumerate(files) for b in files[i + 1:]]
        cross = [pair for pair in pairs if os.path.dirname(pair[0]) != os.path.dirname(pair[1])]
        same = [pair for pair in pairs if os.path.dirname(pair[0]) == os.path.dirname(pair[1])]
        targets = [cross[i] for i in rng.permutation(len(cross))] + [same[i] for i in rng.permutation(len(same))]
        others = [file for other in speakers if other != speaker for file in sorted(files_by_speaker[other])]
        for enrolment, test in targets[:per_speaker]:
            if rng.random() < 0.5:
                enrolment, test = test, enrolment
            trials.append((1, enrolment, test))
            if not others:
                continue
            for _ in range(100):   # a fresh non-target pair; the space is large, so this ends at once
                pair = (files[rng.integers(len(files))], others[rng.integers(len(others))])
                if pair not in chosen:
                    chosen.add(pair)
                    trials.append((0,) + pair)
                    break
    return trials
