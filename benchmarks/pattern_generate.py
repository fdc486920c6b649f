"""Pattern generation speed: a seed-equivalent generator vs Pattern_Generate.py, side by side.

    python benchmarks/pattern_generate.py [--files 1440] [--workers 2] [--keep DIR]

Builds a VCTK-layout corpus of three-second 48 kHz wavs, then times, as whole processes on the
same files and cores: (1) the seed's recipe with librosa in a 2-thread pool writing one pickle per
file in place, as the seed did; (2) Pattern_Generate.py -vctk ... -mw <workers>. Prints both
rates and the ratio. Only the ratio within one run is meaningful: machines differ.
"""
import argparse
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def build_corpus(folder: str, files: int) -> None:
    from fixtures import corpora
    speakers = 24
    for index in range(files):
        speaker, utterance = 225 + index % speakers, index // speakers + 1
        path = f'{folder}/wav48/p{speaker}/p{speaker}_{utterance:03d}.wav'
        if not os.path.exists(path):
            corpora.write(path, corpora.voice(speaker - 225, utterance, seconds=2.4, rate=48000), 48000)


def seed_equivalent(corpus: str, output: str, threads: int) -> None:
    """The seed's generator: librosa recipe, a thread pool, pickle.dump straight into the target."""
    from fixtures.seed_recipe import seed_mel
    os.makedirs(f'{output}/VCTK', exist_ok=True)

    def one(path):
        speaker = os.path.basename(os.path.dirname(path)).upper()
        mel = seed_mel(path, top_db=15)
        name = f'VCTK.{speaker}.{os.path.splitext(os.path.basename(path))[0]}.PICKLE'.upper()
        with open(f'{output}/VCTK/{name}', 'wb') as stream:
            pickle.dump({'Mel': mel, 'Speaker': speaker, 'Dataset': 'VCTK'}, stream, protocol=4)

    paths = sorted(os.path.join(root, file) for root, _, files in os.walk(corpus) for file in files if file.endswith('.wav'))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, paths))


def timed(command: list) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--files', type=int, default=1440)
    parser.add_argument('--workers', type=int, default=2, help='threads of the seed, processes of ours')
    parser.add_argument('--keep', help='corpus folder to create or reuse (default: a temporary one)')
    parser.add_argument('--seed_equivalent', nargs=2, metavar=('CORPUS', 'OUTPUT'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_equivalent:
        seed_equivalent(*args.seed_equivalent, threads=args.workers)
        return

    from Hyper_Parameters import load_hyper_parameters
    from fixtures.settings import save_hyper_parameters
    work = tempfile.mkdtemp(prefix='pattern_bench_')
    corpus = args.keep or f'{work}/corpus'
    build_corpus(corpus, args.files)
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    hp.Train.Train_Pattern.Path = f'{work}/ours'
    save_hyper_parameters(hp, f'{work}/hp.yaml')

    seed_seconds = timed([sys.executable, __file__, '--workers', str(args.workers), '--seed_equivalent', corpus, f'{work}/seed'])
    ours_seconds = timed([sys.executable, 'Pattern_Generate.py', '-hp', f'{work}/hp.yaml', '-vctk', corpus, '-mw', str(args.workers)])
    produced = len(os.listdir(f'{work}/ours/VCTK'))
    assert produced == args.files == len(os.listdir(f'{work}/seed/VCTK')), 'both generators must write every file'
    seed_rate, ours_rate = args.files / seed_seconds, args.files / ours_seconds
    print(f'{args.files} files of 2.4 s speech + 0.6 s silence at 48 kHz, {args.workers} workers, whole processes')
    print(f'seed-equivalent (librosa, {args.workers} threads): {seed_rate:7.1f} files/s ({seed_seconds:.1f} s)')
    print(f'Pattern_Generate.py (-mw {args.workers}):        {ours_rate:7.1f} files/s ({ours_seconds:.1f} s)')
    print(f'ratio: {ours_rate / seed_rate:.2f}x')
    print(f'command: python benchmarks/pattern_generate.py --files {args.files} --workers {args.workers}')
    shutil.rmtree(work)


if __name__ == '__main__':
    main()
