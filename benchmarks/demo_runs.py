"""The demo's training and score, per seed, on this CPU's own code paths and on forced AVX2 ones.

    python benchmarks/demo_runs.py [--seeds 0 1 2] [--modes native avx2] [--hp demo_corpus/Hyper_Parameter_Demo.yaml]

Makes the demo corpus and its patterns in Demo/ when they are missing (as Demo.sh does), then for
each mode and seed runs, as whole processes, Demo.sh's fine-tuning (Train.py --init, Train.Seed set
to the seed) and its multi-slice Inference.py on the held-out trials. `avx2` runs both with
ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2: the kernels of
the pool's AVX2-only machines. Prints the training seconds and EER of every run, their spread
per mode, the CPU and the command. Resemblyzer's EER on these trials: docs/demo.md.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

from steady_state import FORCED_AVX2, cpu_description  # noqa: E402

CORPUS = os.path.join(ROOT, 'Demo', 'Corpus')
INIT = os.path.join(ROOT, 'Example_Results', 'Real_Voices_v2', 'S_4000.pkl')   # what Demo.sh fine-tunes


def ensure_patterns(hp_path: str) -> None:
    """The demo corpus and patterns, as Demo.sh makes them, unless they are there."""
    if not os.path.isfile(os.path.join(CORPUS, 'VC1_Test', 'trials.txt')):
        subprocess.run([sys.executable, '-m', 'demo_corpus', '-o', CORPUS], cwd=ROOT, check=True)
    if not os.path.isfile(os.path.join(ROOT, 'Demo', 'Patterns', 'Train', 'METADATA.PICKLE')):
        subprocess.run([sys.executable, 'Pattern_Generate.py', '-hp', hp_path, '-vctk', f'{CORPUS}/VCTK',
                        '-vc1t', f'{CORPUS}/VC1_Test'], cwd=ROOT, check=True)


def one_run(hp_path: str, seed: int, environment: dict, folder: str) -> tuple:
    """(training seconds, multi-slice EER %) of one fine-tuning with Train.Seed = seed."""
    with open(hp_path, encoding='utf-8') as stream:
        hp = yaml.safe_load(stream)
    hp['Train']['Seed'] = seed
    hp['Checkpoint_Path'], hp['Log_Path'] = os.path.join(folder, 'Checkpoint'), os.path.join(folder, 'Log')
    run_hp = os.path.join(folder, 'hp.yaml')
    with open(run_hp, 'w', encoding='utf-8') as stream:
        yaml.safe_dump(hp, stream)
    started = time.perf_counter()
    subprocess.run([sys.executable, 'Train.py', '-hp', run_hp, '--init', INIT], cwd=ROOT, env=environment,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    checkpoint = os.path.join(folder, 'Checkpoint', f'S_{hp["Train"]["Max_Step"]}.pkl')
    out = os.path.join(folder, 'multi')
    subprocess.run([sys.executable, 'Inference.py', '-c', checkpoint, '-hp', run_hp, '--slices', 'multi',
                    '-i', f'{CORPUS}/VC1_Test/wav', '--trials', f'{CORPUS}/VC1_Test/trials.txt',
                    '--root', f'{CORPUS}/VC1_Test/wav', '-o', out, '--no-plot'], cwd=ROOT, env=environment,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(out, 'verification.json'), encoding='utf-8') as stream:
        return seconds, json.load(stream)['eer_percent']


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    parser.add_argument('--modes', nargs='+', choices=('native', 'avx2'), default=['native', 'avx2'])
    parser.add_argument('--hp', default='demo_corpus/Hyper_Parameter_Demo.yaml')
    args = parser.parse_args()
    ensure_patterns(args.hp)
    results = {}
    with tempfile.TemporaryDirectory(prefix='demo_runs_') as scratch:
        for seed in args.seeds:                       # modes alternate, so a busy spell hits both alike
            for mode in args.modes:
                environment = dict(os.environ, **(FORCED_AVX2 if mode == 'avx2' else {}))
                folder = os.path.join(scratch, f'{mode}-{seed}')
                os.makedirs(folder)
                seconds, eer = one_run(args.hp, seed, environment, folder)
                results.setdefault(mode, []).append((seed, seconds, eer))
                print(f'{mode:6} seed {seed}: training {seconds:6.1f} s, multi-slice EER {eer:.2f} %', flush=True)
                shutil.rmtree(folder)
    print()
    for mode, runs in results.items():
        environment = dict(os.environ, **(FORCED_AVX2 if mode == 'avx2' else {}))
        eers, times = [eer for _, _, eer in runs], [seconds for _, seconds, _ in runs]
        print(f'{mode:6}: EER {min(eers):.2f}-{max(eers):.2f} % (mean {statistics.mean(eers):.2f}) over seeds '
              f'{", ".join(str(seed) for seed, _, _ in runs)}; training {min(times):.0f}-{max(times):.0f} s; '
              f'CPU: {cpu_description(environment)}')
    print(f'command: python benchmarks/demo_runs.py --seeds {" ".join(map(str, args.seeds))} '
          f'--modes {" ".join(args.modes)} --hp {args.hp}')


if __name__ == '__main__':
    main()
