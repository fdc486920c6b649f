"""Each augmentation alone, none, and all together, on the same steps: the held-out real EER of each.

    python recipes/augmentation_ablation.py [--steps 500]       # after real_voices.py's prepare and patterns

Every variant fine-tunes round 1's encoder (real_voices.INIT_CHECKPOINT) with recipes/real_voices.yaml's
settings for --steps steps, changing only the Augmentation section; the variants without speed
perturbation read patterns made without it (Real_Voices/Patterns/Train_Clean). Each is then scored
on every pair of held-out files (Inference.py, default slicing). Variants already trained or scored
are not redone; the table is printed at the end.
"""
import argparse
import copy
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import real_voices  # noqa: E402
from real_voices import ROOT, run  # noqa: E402

OFF = {'Speed': [], 'Noise': {'Probability': 0.0}, 'Babble': {'Probability': 0.0}, 'Reverb': {'Probability': 0.0},
       'Time_Mask': {'Count': 0}, 'Frequency_Mask': {'Count': 0}}
FOLDER = os.path.join('Real_Voices', 'Ablation')


def variants(recipe: dict) -> dict:
    """name -> the Augmentation section of that variant: none, each part of the recipe's alone, all,
    and all but the one part that alone made the held-out EER worse (noise and babble)."""
    full = recipe['Augmentation']
    parts = {'speed': ['Speed'], 'noise and babble': ['Noise', 'Babble'], 'rooms': ['Reverb'],
             'masks': ['Time_Mask', 'Frequency_Mask']}
    chosen = {'none': copy.deepcopy(OFF)}
    for name, keys in parts.items():
        section = copy.deepcopy(OFF)
        for key in keys:
            section[key] = copy.deepcopy(full[key])
        chosen[name] = section
    chosen['all'] = copy.deepcopy(full)
    chosen['all but noise and babble'] = {**copy.deepcopy(full), 'Noise': OFF['Noise'], 'Babble': OFF['Babble']}
    return chosen


def settings_file(recipe: dict, name: str, augmentation: dict, steps: int) -> str:
    """The variant's YAML (written once): its own checkpoints and logs; clean patterns without speed."""
    settings = copy.deepcopy(recipe)
    settings['Augmentation'] = {**recipe['Augmentation'], **augmentation}
    folder = os.path.join(FOLDER, name.replace(' ', '_'))
    settings['Train']['Max_Step'] = steps
    settings['Train']['Evaluation_Interval'] = steps
    settings['Train']['Checkpoint_Save_Interval'] = min(steps, recipe['Train']['Checkpoint_Save_Interval'])
    if not augmentation['Speed']:
        settings['Train']['Train_Pattern']['Path'] = 'Real_Voices/Patterns/Train_Clean'
    settings['Checkpoint_Path'] = os.path.join(folder, 'Checkpoint')
    settings['Log_Path'] = os.path.join(folder, 'Log')
    path = os.path.join(ROOT, folder, 'settings.yaml')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as stream:
        yaml.safe_dump(settings, stream, sort_keys=False)
    return path


def clean_patterns(recipe: dict, corpus: str, workers: int) -> None:
    """The training patterns without speed perturbation (a rerun skips what is there)."""
    settings = copy.deepcopy(recipe)
    settings['Augmentation'] = {**recipe['Augmentation'], 'Speed': []}
    settings['Train']['Train_Pattern']['Path'] = 'Real_Voices/Patterns/Train_Clean'
    path = os.path.join(ROOT, FOLDER, 'clean_patterns.yaml')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as stream:
        yaml.safe_dump(settings, stream, sort_keys=False)
    real_voices.make_patterns(corpus, workers, os.path.relpath(path, ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=500, help='training steps of every variant (default 500)')
    parser.add_argument('--corpus', default=os.path.join(ROOT, 'Real_Voices', 'Corpus'), help='prepared corpus folder')
    parser.add_argument('--only', action='append', help='run just this variant (repeatable): none, speed, '
                        '"noise and babble", rooms, masks, all, "all but noise and babble"')
    parser.add_argument('-mw', '--max_workers', type=int, default=os.cpu_count())
    args = parser.parse_args()
    with open(os.path.join(ROOT, real_voices.HYPER_PARAMETERS), encoding='utf-8') as stream:
        recipe = yaml.safe_load(stream)
    chosen = variants(recipe)
    unknown = set(args.only or []) - set(chosen)
    if unknown:
        raise SystemExit(f'--only {", ".join(sorted(unknown))}: not a variant; choose from {", ".join(chosen)}')
    clean_patterns(recipe, args.corpus, args.max_workers)
    held_out = os.path.join(args.corpus, 'Held_Out')
    results = {}
    for name, augmentation in chosen.items():
        if args.only and name not in args.only:
            continue
        settings = settings_file(recipe, name, augmentation, args.steps)
        folder = os.path.join(ROOT, FOLDER, name.replace(' ', '_'))
        if not os.path.isfile(os.path.join(folder, 'Checkpoint', f'S_{args.steps}.pkl')):
            last = real_voices.list_checkpoints(os.path.join(folder, 'Checkpoint'))
            run(['Train.py', '-hp', settings] + (['-s', str(last[-1])] if last else ['--init', real_voices.INIT_CHECKPOINT]))
        scores = os.path.join(folder, 'Inference', 'scores.txt')
        if not os.path.isfile(scores):
            run(['Inference.py', '-c', os.path.join(folder, 'Checkpoint', f'S_{args.steps}.pkl'), '-i',
                 os.path.join(held_out, 'labels.txt'), '--trials', os.path.join(held_out, 'trials.txt'),
                 '--root', held_out, '-o', os.path.dirname(scores), '--no-plot'])
        results[name] = scores
    for name, scores in results.items():
        print(f'{name:>17}: ', end='')
        real_voices.print_source_eers(scores)


if __name__ == '__main__':
    main()
