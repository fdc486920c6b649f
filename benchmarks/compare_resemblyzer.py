"""Verification quality on the same trials: this project's checkpoint vs Resemblyzer's pretrained GE2E encoder.

    pip install --no-deps -r benchmarks/requirements.txt
    python benchmarks/compare_resemblyzer.py -c Example_Results/Synthetic/Checkpoint/S_2500.pkl \
        --trials Demo/Corpus/VC1_Test/trials.txt --root Demo/Corpus/VC1_Test/wav

Each system embeds every trial file once with its own recipe (ours: embedding.py's multi-slice
embedding; Resemblyzer: preprocess_wav + embed_utterance) and scores trials by cosine similarity.
Prints the EER and minDCF of both on the same trials.
"""
import argparse
import os
import sys

import numpy as np
import torch
from tqdm import tqdm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ge2e_speaker import embedding, metrics, verification  # noqa: E402


def resemblyzer_embeddings(paths: list) -> dict:
    from resemblyzer import VoiceEncoder, preprocess_wav
    torch.set_num_threads(1)   # Resemblyzer's fastest setting on a small CPU
    encoder = VoiceEncoder('cpu', verbose=False)
    return {path: encoder.embed_utterance(preprocess_wav(path))
            for path in tqdm(paths, desc='Resemblyzer', unit='utt')}


def folder_eer(result, folder: str) -> tuple:
    """(EER, trials) of the scored trials whose two paths both lie in the first-level folder."""
    within = [index for index, (_, first, second) in enumerate(result.trials)
              if first.split('/')[0] == second.split('/')[0] == folder]
    return metrics.equal_error_rate(result.scores[within], [result.trials[i][0] for i in within]), len(within)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-c', '--checkpoint', required=True)
    parser.add_argument('-hp', '--hyper_parameters', help='default: the file beside the checkpoint')
    parser.add_argument('--trials', required=True)
    parser.add_argument('--root', required=True, help='folder the trial paths are relative to')
    parser.add_argument('--slices', default='auto', choices=embedding.SLICE_MODES)
    parser.add_argument('--by-folder', action='store_true',
                        help="also the EER of the trials within each first folder of the trial paths (a corpus's tag)")
    args = parser.parse_args()

    trials = verification.read_trials(args.trials)
    files = sorted({path for _, first, second in trials for path in (first, second)})
    ours = verification.evaluate_trials(
        embedding.load_encoder(args.checkpoint, args.hyper_parameters, slices=args.slices), trials, args.root, progress=True)
    theirs_vectors = resemblyzer_embeddings([os.path.join(args.root, file) for file in files])
    theirs = verification.score_trials(trials, {file: np.asarray(theirs_vectors[os.path.join(args.root, file)], np.float32)
                                             for file in files})
    print(f'{len(trials)} trials ({sum(target for target, _, _ in trials)} target) over {len(files)} files of {args.root}')
    print(f'this project ({os.path.basename(args.checkpoint)}, {args.slices} slices): '
          f'EER {100 * ours.eer:.2f} %, minDCF {ours.min_dcf:.4f} ({len(ours.trials)} trials scored)')
    print(f'Resemblyzer (pretrained VoiceEncoder):            '
          f'EER {100 * theirs.eer:.2f} %, minDCF {theirs.min_dcf:.4f} ({len(theirs.trials)} trials scored)')
    if args.by_folder:
        for folder in sorted({first.split('/')[0] for _, first, _ in trials}):
            (mine, count), (others, _) = (folder_eer(result, folder) for result in (ours, theirs))
            print(f'  {folder}: {count} trials within it: this project EER {100 * mine:.2f} %, '
                  f'Resemblyzer {100 * others:.2f} %')
    print(f'command: python benchmarks/compare_resemblyzer.py -c {args.checkpoint} --trials {args.trials} '
          f'--root {args.root}' + (' --by-folder' if args.by_folder else ''))


if __name__ == '__main__':
    main()
