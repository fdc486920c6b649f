"""What on-the-fly augmentation costs a training step: each part alone and all, beside the step itself.

    python benchmarks/augmentation_cost.py [-hp recipes/real_voices.yaml] [--steps 20] [--threads 1]

Times, in one process and in turn, round after round: a training step of the recipe's encoder and
GE2E loss on one batch of the recipe's shape (Train.Batch.Train speakers x utterances, the longest
Train.Frame_Length), with the recipe's precision, and the augmenter (ge2e_speaker.augmentation) on
that batch with each of its parts alone and with all of the recipe's. Prints the medians, the cost
as a share of the step, and the batches/s that a store delivering batches for free would then allow.
Only ratios within one run mean anything: the machine may be shared.
"""
import argparse
import copy
import os
import statistics
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ge2e_speaker.augmentation import BatchAugmenter  # noqa: E402
from ge2e_speaker.hyper_parameters import load_hyper_parameters  # noqa: E402
from ge2e_speaker.loss import EncoderWithLoss, GE2ELoss  # noqa: E402
from ge2e_speaker.modules import Encoder  # noqa: E402
from ge2e_speaker.runtime import cpu_has_bfloat16  # noqa: E402
from steady_state import cpu_description  # noqa: E402

PARTS = {'noise': ['Noise'], 'babble': ['Babble'], 'rooms': ['Reverb'], 'masks': ['Time_Mask', 'Frequency_Mask']}


def only(settings, keys: list):
    """settings with every part off but keys."""
    chosen = copy.deepcopy(settings)
    for part in ('Noise', 'Babble', 'Reverb'):
        if part not in keys:
            getattr(chosen, part).Probability = 0.0
    for part in ('Time_Mask', 'Frequency_Mask'):
        if part not in keys:
            getattr(chosen, part).Count = 0
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-hp', '--hyper_parameters', default=os.path.join(ROOT, 'recipes', 'real_voices.yaml'))
    parser.add_argument('--steps', type=int, default=20, help='rounds (default 20)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads (default 1, as CPU training uses)')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hp = load_hyper_parameters(args.hyper_parameters)
    batch = hp.Train.Batch.Train
    mels = torch.rand(batch.Speaker * batch.Pattern_per_Speaker, hp.Sound.Mel_Dim, hp.Train.Frame_Length.Max) * 6 - 4
    device = torch.device('cpu')
    model = EncoderWithLoss(Encoder.from_hyper_parameters(hp), GE2ELoss.from_hyper_parameters(hp), batch.Pattern_per_Speaker)
    optimizer = torch.optim.RAdam(model.parameters(), lr=1e-4)
    bfloat16 = bool(hp.Train.Mixed_Precision) and cpu_has_bfloat16()

    def step():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bfloat16):
            loss = model(mels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    augmenters = {name: BatchAugmenter(only(hp.Augmentation, keys), hp.Sound, batch.Pattern_per_Speaker, device)
                  for name, keys in PARTS.items()}
    augmenters['all'] = BatchAugmenter(hp.Augmentation, hp.Sound, batch.Pattern_per_Speaker, device)
    times = {name: [] for name in ['step'] + list(augmenters)}
    step()   # warm-up
    for index in range(args.steps):
        started = time.perf_counter()
        step()
        times['step'].append(time.perf_counter() - started)
        for name, augmenter in augmenters.items():
            started = time.perf_counter()
            augmenter(mels, index)
            times[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f'CPU: {cpu_description()}; torch {torch.__version__}, {args.threads} thread(s), '
          f'{"bfloat16" if bfloat16 else "float32"} step; batch {tuple(mels.shape)}')
    print(f'training step: {1000 * medians["step"]:.0f} ms ({1 / medians["step"]:.2f} steps/s)')
    for name in augmenters:
        share = medians[name] / medians['step']
        print(f'augmentation {name:>6}: {1000 * medians[name]:6.1f} ms = {100 * share:4.1f} % of a step; '
              f'steps/s {1 / medians["step"]:.2f} -> {1 / (medians["step"] + medians[name]):.2f}')
    print(f'command: python benchmarks/augmentation_cost.py -hp {os.path.relpath(args.hyper_parameters, ROOT)} '
          f'--steps {args.steps} --threads {args.threads}')


if __name__ == '__main__':
    main()
