"""A trial list of every pair of files, for an EER over all pairs (as in README Results).

    python benchmarks/all_pairs.py -kaldi speechocean762/test -o so762_test_trials.txt [--per-speaker 20]
    python benchmarks/all_pairs.py -list files.txt -o trials.txt       # 'path speaker' per line

Paths in the trial list are as the source gives them (a Kaldi wav.scp's relative paths stay
relative to the corpus root: pass that as --root to Inference.py or compare_resemblyzer.py).
--per-speaker keeps each speaker's first N files (sorted), so the pairs stay few enough.
"""
import argparse
import itertools
import os
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ge2e_speaker.atomic_files import write_atomically  # noqa: E402


def kaldi_files(data_dir: str) -> dict:
    """speaker -> paths of a Kaldi data dir (wav.scp and utt2spk; no pipes, no segments)."""
    paths = dict(line.split(None, 1) for line in open(os.path.join(data_dir, 'wav.scp')) if line.strip())
    by_speaker = defaultdict(list)
    for line in open(os.path.join(data_dir, 'utt2spk')):
        if line.strip():
            utterance, speaker = line.split()
            by_speaker[speaker].append(paths[utterance].strip())
    return by_speaker


def listed_files(list_file: str) -> dict:
    by_speaker = defaultdict(list)
    for line in open(list_file, encoding='utf-8-sig'):
        if line.strip():
            path, speaker = line.rsplit(None, 1)
            by_speaker[speaker].append(path)
    return by_speaker


def all_pairs(by_speaker: dict, per_speaker: int = None) -> list:
    """['target a b'] for every pair of the kept files; target 1 when one speaker spoke both."""
    files = [(path, speaker) for speaker in sorted(by_speaker) for path in sorted(by_speaker[speaker])[:per_speaker]]
    return [f'{int(first[1] == second[1])} {first[0]} {second[0]}' for first, second in itertools.combinations(files, 2)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('-kaldi', help='a Kaldi data dir (wav.scp, utt2spk)')
    source.add_argument('-list', help="a list file, 'path speaker' per line")
    parser.add_argument('-o', '--output', required=True, help='the trial list to write')
    parser.add_argument('--per-speaker', type=int, help="keep each speaker's first N files")
    args = parser.parse_args()
    by_speaker = kaldi_files(args.kaldi) if args.kaldi else listed_files(args.list)
    trials = all_pairs(by_speaker, args.per_speaker)
    write_atomically(args.output, ('\n'.join(trials) + '\n').encode())
    print(f'{args.output}: {len(trials)} trials ({sum(t.startswith("1") for t in trials)} target) over '
          f'{len(by_speaker)} speakers')


if __name__ == '__main__':
    main()
