"""AS-norm on held-out real speakers: the EER of cosine scores and of AS-normalised scores per
cohort size N (--cohort-top), the encoder the package ships.

    git clone https://github.com/jimbozhang/speechocean762 SOURCES/speechocean762
    python benchmarks/as_norm.py --sources SOURCES [--tops 25 50 100 200 400] [--cohort-per-speaker 4]

Trials: every pair of the held-out speakers' files of speechocean762's train half, the same
speakers and files recipes/real_voices.py holds out of training (its seed, at most 20 files each).
Cohort: files of the other train-half speakers (those the example trained on; none of the
trial speakers), the first --cohort-per-speaker of each. speechocean762's test half is reserved
and not read. Prints the table, the CPU and the command.
"""
import argparse
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

from ge2e_speaker import load_encoder, metrics, score_norm  # noqa: E402
from recipes import real_voices  # noqa: E402
from steady_state import cpu_description  # noqa: E402


def split(source: str) -> tuple:
    """(held-out speaker -> files, training speaker -> files) as recipes/real_voices.py draws them."""
    name = 'speechocean762'
    _, held_out, join, candidate_minimum = real_voices.SOURCES[name]
    rng = np.random.default_rng([real_voices.SEED, len(name)])
    clips = real_voices.source_clips(name, source)
    candidates = sorted(speaker for speaker, files in clips.items() if len(files) // max(join, 1) >= candidate_minimum)
    chosen = set(rng.choice(candidates, size=held_out, replace=False).tolist())
    files = {speaker: [path for _, path in clips[speaker]] for speaker in candidates}
    return ({speaker: files[speaker][:real_voices.HELD_OUT_UTTERANCES] for speaker in sorted(chosen)},
            {speaker: files[speaker] for speaker in candidates if speaker not in chosen})


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--sources', required=True, help='the folder holding the speechocean762 clone')
    parser.add_argument('--tops', type=int, nargs='+', default=[25, 50, 100, 200, 400])
    parser.add_argument('--cohort-per-speaker', type=int, default=4)
    args = parser.parse_args()
    held_out, training = split(os.path.join(args.sources, 'speechocean762'))
    trial_files = [path for files in held_out.values() for path in files]
    owners = np.array([speaker for speaker, files in held_out.items() for _ in files])
    cohort_files = [path for files in training.values() for path in files[:args.cohort_per_speaker]]
    encoder = load_encoder(device='cpu')
    started = time.perf_counter()
    trial_rows = encoder.embed_files(trial_files, progress=True)                       # [n, 256]
    cohort_rows = encoder.embed_files(cohort_files, progress=True)                     # [M, 256]
    print(f'embedded {len(trial_files) + len(cohort_files):,} files in {time.perf_counter() - started:.0f} s')
    first, second = np.triu_indices(len(trial_files), k=1)
    targets = owners[first] == owners[second]
    raw = (trial_rows[first] * trial_rows[second]).sum(axis=1)
    print(f'{len(held_out)} held-out speakers, {len(trial_files)} files, {len(raw):,} trials ({targets.sum():,} target); '
          f'cohort {len(cohort_rows):,} files of {len(training)} other speakers')
    print('| scores | EER | minDCF (p 0.01) |\n|---|---|---|')
    print(f'| cosine | {100 * metrics.equal_error_rate(raw, targets):.2f} % | {metrics.minimum_dcf(raw, targets, 0.01):.4f} |')
    for top in args.tops:
        if top > len(cohort_rows):
            continue
        normalised = score_norm.as_norm(raw, first, second, score_norm.top_statistics(trial_rows, cohort_rows, top))
        print(f'| AS-norm, top {top} | {100 * metrics.equal_error_rate(normalised, targets):.2f} % | '
              f'{metrics.minimum_dcf(normalised, targets, 0.01):.4f} |')
    print(f'CPU: {cpu_description()}')
    print('Command: python ' + ' '.join(sys.argv))


if __name__ == '__main__':
    main()
