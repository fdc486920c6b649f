"""Pattern generation speed: a seed-equivalent generator vs Pattern_Generate.py, side by side.

    python benchmarks/pattern_generate.py [--files 1440] [--workers 2] [--keep DIR]
    python benchmarks/pattern_generate.py --sizes 480 1920 --rounds 3 [--keep DIR]   # steady state

Builds a VCTK-layout corpus of three-second 48 kHz wavs, then times, as whole processes on the
same files and cores: (1) the seed's recipe with librosa in a 2-thread pool writing one pickle per
file in place, as the seed did; (2) Pattern_Generate.py -vctk ... -mw <workers>. Prints both
rates and the ratio. Only the ratio within one run is meaningful: machines differ.

--sizes N1 N2 times both whole processes on the first N1 and the first N2 files (hard links of
one corpus), each from an empty output folder, in turn for --rounds rounds; each rate is
(N2 - N1) / (t2 - t1), start-up excluded (benchmarks/steady_state.py), and the ratio is reported
for every round and as their median.
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


def subset(corpus: str, folder: str, files: int) -> str:
    """The first `files` files of build_corpus's corpus, as hard links (copies where links fail)."""
    speakers = 24
    for index in range(files):
        speaker, utterance = 225 + index % speakers, index // speakers + 1
        name = f'wav48/p{speaker}/p{speaker}_{utterance:03d}.wav'
        if not os.path.exists(f'{folder}/{name}'):
            os.makedirs(os.path.dirname(f'{folder}/{name}'), exist_ok=True)
            try:
                os.link(f'{corpus}/{name}', f'{folder}/{name}')
            except OSError:
                shutil.copyfile(f'{corpus}/{name}', f'{folder}/{name}')
    return folder


def steady_state(args, corpus: str, work: str) -> None:
    """--sizes: both generators as whole processes on two corpus sizes, in turn, several rounds."""
    from steady_state import cpu_description, report, run_rounds, timed_process
    small, large = sorted(args.sizes)
    corpora = {size: subset(corpus, f'{work}/corpus_{size}', size) for size in (small, large)}
    for root, _, names in os.walk(corpora[large]):   # into the page cache before any run
        for name in names:
            with open(os.path.join(root, name), 'rb') as stream:
                stream.read()

    def generator(command, output):
        def run(size):
            shutil.rmtree(output, ignore_errors=True)
            result = timed_process([sys.executable, *command(corpora[size])], cwd=ROOT)
            assert len(os.listdir(f'{output}/VCTK')) == size, 'every file must be written'
            return result
        return run

    seed = f'seed-equivalent (librosa, {args.workers} threads)'
    systems = {f'Pattern_Generate.py (-mw {args.workers})':
               generator(lambda folder: ['Pattern_Generate.py', '-hp', f'{work}/hp.yaml', '-vctk', folder, '-mw', str(args.workers)],
                         f'{work}/ours'),
               seed: generator(lambda folder: [__file__, '--workers', str(args.workers), '--seed_equivalent', folder, f'{work}/seed'],
                               f'{work}/seed')}
    print(f'{large} files of 2.4 s voice-like signal + 0.6 s silence at 48 kHz; whole processes on the first {small} and all '
          f'{large}; float32 mels; CPU: {cpu_description()}')
    print(f'Rounds (whole-run seconds on {small} / {large} files -> steady-state files/s):')
    rates, cpu_ms = run_rounds(systems, [small, large], args.rounds, seed, 'files/s')
    report(rates, cpu_ms, seed, 'files/s')
    print('Command: python ' + ' '.join(sys.argv))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--files', type=int, default=1440)
    parser.add_argument('--workers', type=int, default=os.cpu_count(),
                        help="threads of the seed, processes of ours (default all cores, Pattern_Generate.py's default)")
    parser.add_argument('--sizes', type=int, nargs=2, metavar=('N1', 'N2'),
                        help='whole processes in steady state on the first N1 and N2 files (e.g. 480 1920), in turn')
    parser.add_argument('--rounds', type=int, default=3, help='rounds with --sizes (default 3)')
    parser.add_argument('--keep', help='corpus folder to create or reuse (default: a temporary one)')
    parser.add_argument('--seed_equivalent', nargs=2, metavar=('CORPUS', 'OUTPUT'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_equivalent:
        seed_equivalent(*args.seed_equivalent, threads=args.workers)
        return

    from ge2e_speaker.hyper_parameters import load_hyper_parameters
    from fixtures.settings import save_hyper_parameters
    work = tempfile.mkdtemp(prefix='pattern_bench_')
    corpus = args.keep or f'{work}/corpus'
    build_corpus(corpus, max(args.sizes) if args.sizes else args.files)
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    hp.Train.Train_Pattern.Path = f'{work}/ours'
    save_hyper_parameters(hp, f'{work}/hp.yaml')
    if args.sizes:
        steady_state(args, corpus, work)
        shutil.rmtree(work)
        return

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
