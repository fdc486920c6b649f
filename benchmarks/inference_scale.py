"""A big Inference.py run, whole and in shards: time and peak memory, the merged set checked
against the single run, and what a million files would take.

    python benchmarks/inference_scale.py [--files 10000] [--small 1000] [--shards 2] [--audio /tmp/bench_audio]

The input is a list file of --files entries that cycles over benchmarks/inference.py's 480
eSpeak NG files (2-6 s, three in four at 48 kHz), labelled by speaker. Each run is a fresh
process (`python Inference.py -c <the shipped encoder> -i LIST -o OUT --no-plot`, its default
threads and workers); its wall time and peak resident memory (wait4) are printed. Then
`--shard K/N` for every part and `--merge`, and the merged files are compared with the single
run's (rows within 1e-5, the same index and speaker vectors). The million-file figures
extrapolate the steady rate ((files - small) / (t_files - t_small)) and the memory's growth
per file between the --small and --files runs.
"""
import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

from ge2e_speaker.embedding import EXAMPLE_CHECKPOINT  # noqa: E402
from inference import corpus  # noqa: E402  (benchmarks/inference.py)
from steady_state import cpu_description  # noqa: E402


def timed(command: list) -> tuple:
    """(wall seconds, peak resident MB) of a command run as a child process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f'{" ".join(command)} failed: {process.stderr.read().decode()[-400:]}')
    return seconds, usage.ru_maxrss / 1024


def read_set(folder: str) -> tuple:
    with open(os.path.join(folder, 'speaker_embeddings.pickle'), 'rb') as stream:
        speakers = pickle.load(stream)
    with open(os.path.join(folder, 'embeddings_index.tsv'), encoding='utf-8') as stream:
        index = stream.read()
    return np.load(os.path.join(folder, 'embeddings.npy')), index, speakers


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--files', type=int, default=10000)
    parser.add_argument('--small', type=int, default=1000)
    parser.add_argument('--shards', type=int, default=2)
    parser.add_argument('--audio', help='folder of the generated audio (kept and reused); default a temporary one')
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix='inference_scale_')
    paths, kind = corpus(args.audio or os.path.join(work, 'audio'), 480)
    lists = {}
    for size in (args.small, args.files):
        lists[size] = os.path.join(work, f'list_{size}.txt')
        with open(lists[size], 'w', encoding='utf-8') as stream:
            stream.write(''.join(f'{paths[n % len(paths)]} {os.path.basename(os.path.dirname(paths[n % len(paths)]))}\n'
                                 for n in range(size)))
    base = [sys.executable, 'Inference.py', '-c', EXAMPLE_CHECKPOINT, '--no-plot']
    print(f'{args.files:,} list entries over {len(paths)} files of {kind}; CPU: {cpu_description()}')
    runs = {}
    for size in (args.small, args.files):
        runs[size] = timed(base + ['-i', lists[size], '-o', os.path.join(work, f'single_{size}')])
        print(f'single run, {size:,} files: {runs[size][0]:.1f} s ({size / runs[size][0]:.1f} files/s), peak {runs[size][1]:.0f} MB')
    split = os.path.join(work, 'split')
    for part in range(1, args.shards + 1):
        seconds, peak = timed(base + ['-i', lists[args.files], '-o', split, '--shard', f'{part}/{args.shards}'])
        print(f'--shard {part}/{args.shards}: {seconds:.1f} s, peak {peak:.0f} MB')
    seconds, peak = timed([sys.executable, 'Inference.py', '-o', split, '--merge', '--no-plot'])
    print(f'--merge of {args.shards} shards: {seconds:.1f} s, peak {peak:.0f} MB')
    single, merged = read_set(os.path.join(work, f'single_{args.files}')), read_set(split)
    difference = float(np.abs(single[0] - merged[0]).max())
    speakers = max(float(np.abs(single[2][label] - merged[2][label]).max()) for label in single[2])
    same = single[1] == merged[1] and sorted(single[2]) == sorted(merged[2])
    print(f'merged vs single: rows {merged[0].shape[0]:,} / {single[0].shape[0]:,}, largest difference {difference:.1e} '
          f'(speaker vectors {speakers:.1e}), index {"identical" if same else "DIFFERENT"}: '
          f'{"equal within 1e-5" if same and difference <= 1e-5 and speakers <= 1e-5 else "NOT EQUAL"}')
    rate = (args.files - args.small) / (runs[args.files][0] - runs[args.small][0])
    growth = (runs[args.files][1] - runs[args.small][1]) / (args.files - args.small)
    million = 1_000_000
    print(f'a million files: {million / rate / 3600:.1f} h on one such machine at the steady {rate:.1f} files/s '
          f'({million / rate / 3600 / 10:.1f} h over 10 machines with --shard K/10, plus the merge); memory '
          f'{runs[args.files][1] + growth * (million - args.files):.0f} MB at {1024 * growth:.2f} kB per file')
    print('Command: python ' + ' '.join(sys.argv))


if __name__ == '__main__':
    main()
