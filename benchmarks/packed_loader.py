"""The training loader reading pattern pickles vs the packed store (pattern_store.py), side by side.

    python benchmarks/packed_loader.py [--speakers 96] [--utterances 16] [--batches 12] [--rounds 2]
    python benchmarks/packed_loader.py --million 1000000      # the index of a million-pattern store

Writes synthetic patterns of 200-800 frames (fixtures.patterns.write_pattern_corpus) to a temporary
folder and packs them, then runs Train.py's training batches alone (batches.training_batches: 64 x 15
batches, Train.Frame_Length crops, no model) on each source in alternating child processes, with
the same --workers: DataLoader worker processes for the pickles, assembling threads for the store:

  warm   the files in the page cache: batches/s and utterances/s
  cold   the files evicted from the page cache first (posix_fadvise DONTNEED): utterances/s and the
         bytes read from the disk per batch (ru_inblock of the child and its workers)

--million N writes the index of an N-pattern store over a sparse part (mels all zero: only the
index and metadata are real), times the commit and measures the loader's memory with it.
Only ratios within one run mean anything: the machine may be shared.
"""
import argparse
import json
import os
import pickle
import platform
import resource
import subprocess
import sys
import tempfile
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from ge2e_speaker import atomic_files, pattern_store, patterns  # noqa: E402
from ge2e_speaker.hyper_parameters import load_hyper_parameters  # noqa: E402


def cpu_name() -> str:
    try:
        output = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
        return next(line.split(':', 1)[1].strip() for line in output.splitlines() if line.startswith('Model name'))
    except (OSError, StopIteration):
        return platform.processor() or 'unknown CPU'


def evict(paths) -> None:
    """Drop the files' pages from the page cache (written back first)."""
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(descriptor)
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


def load_into_cache(paths) -> None:
    """Read the files once, so that a warm run finds them in the page cache (a cold run before it evicted them)."""
    for path in paths:
        with open(path, 'rb') as stream:
            while stream.read(1 << 24):
                pass


def child(args) -> None:
    """One loader run: prints {'utterances_per_second', 'seconds', 'batches'} as JSON."""
    import torch
    from ge2e_speaker import batches, datasets
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    hp.Train.Train_Pattern.Path = args.corpus
    torch.manual_seed(0)
    dataset = datasets.load_speaker_dataset(hp.Train.Train_Pattern, hp.Sound, args.per_speaker, False,
                                            use_store=args.source == 'store')
    assert (dataset.store is not None) == (args.source == 'store')
    loader = batches.training_batches(dataset, args.batch_speakers, hp.Train.Frame_Length.Min, hp.Train.Frame_Length.Max,
                                      args.workers, torch.device('cpu'))
    stream = (batch for _ in iter(int, 1) for batch in loader)              # epoch after epoch
    for _ in range(args.warmup):
        next(stream)
    started = time.perf_counter()
    for _ in range(args.batches):
        next(stream)
    seconds = time.perf_counter() - started
    del stream, loader
    print(json.dumps({'batches_per_second': args.batches / seconds,
                      'utterances_per_second': args.batches * args.batch_speakers * args.per_speaker / seconds,
                      'seconds': seconds}))


def run_child(args, source: str, corpus: str, warmup: int, paths: list, cold: bool) -> dict:
    (evict if cold else load_into_cache)(paths)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_inblock
    command = [sys.executable, os.path.abspath(__file__), '--child', source, '--corpus', corpus, '--warmup', str(warmup)] + [
        f'--{key}={getattr(args, key)}' for key in ('batches', 'batch_speakers', 'per_speaker', 'workers')]
    output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    result['bytes_read'] = (resource.getrusage(resource.RUSAGE_CHILDREN).ru_inblock - before) * 512
    return result


def loader_comparison(args, folder: str) -> None:
    from fixtures.patterns import write_pattern_corpus
    corpus = os.path.join(folder, 'patterns')
    started = time.perf_counter()
    metadata = write_pattern_corpus(corpus, args.speakers, args.utterances, frames=(200, 800))
    print(f'corpus: {args.speakers} speakers x {args.utterances} patterns of 200-800 frames '
          f'({time.perf_counter() - started:.1f} s to write)', flush=True)
    started = time.perf_counter()
    pattern_store.pack(corpus, log=lambda message: None)
    packing = time.perf_counter() - started
    pickles = [os.path.join(corpus, file) for file in metadata['File_List']]
    store_files = [os.path.join(pattern_store.store_folder(corpus), name) for name in os.listdir(pattern_store.store_folder(corpus))]
    pickle_bytes = sum(os.path.getsize(path) for path in pickles)
    print(f'pack: {len(pickles)} patterns ({pickle_bytes / 2 ** 20:.0f} MiB of pickles) in {packing:.1f} s '
          f'({len(pickles) / packing:.0f} patterns/s, {pickle_bytes / 2 ** 20 / packing:.0f} MiB/s)', flush=True)
    results = {(source, cache): [] for cache in ('warm', 'cold') for source in ('pickles', 'store')}
    for round_index in range(args.rounds):
        for source in ('pickles', 'store'):
            results[source, 'warm'].append(run_child(args, source, corpus, args.warmup, pickles + store_files, cold=False))
            results[source, 'cold'].append(run_child(args, source, corpus, 0, pickles + store_files, cold=True))
        print(f'round {round_index + 1}: ' + ', '.join(
            f'{source} {cache} {runs[-1]["batches_per_second"]:.1f}' for (source, cache), runs in results.items())
            + ' batches/s', flush=True)
    utterances = args.batch_speakers * args.per_speaker
    print(f'\nCPU: {cpu_name()}; {os.cpu_count()} cores; {args.workers} workers (pickles: processes, store: threads); {args.batch_speakers} x '
          f'{args.per_speaker} batches; {args.rounds} rounds x {args.batches} batches per source and cache state')
    for cache in ('warm', 'cold'):
        rate = {source: sum(run['batches_per_second'] for run in results[source, cache]) / args.rounds
                for source in ('pickles', 'store')}
        line = (f'  {cache} page cache: pickles {rate["pickles"]:6.1f} batches/s ({rate["pickles"] * utterances:.0f} '
                f'utterances/s), store {rate["store"]:6.1f} batches/s ({rate["store"] * utterances:.0f} utterances/s): '
                f'{rate["store"] / rate["pickles"]:.1f}x')
        if cache == 'cold':
            read = {source: sum(run['bytes_read'] for run in results[source, cache]) / (args.rounds * args.batches)
                    for source in ('pickles', 'store')}
            line += (f'; read from disk per batch: pickles {read["pickles"] / 2 ** 20:.1f} MiB, store '
                     f'{read["store"] / 2 ** 20:.1f} MiB: {read["pickles"] / max(read["store"], 1):.1f}x fewer '
                     f'({utterances} crops of {load_hyper_parameters(os.path.join(ROOT, "Hyper_Parameter.yaml")).Train.Frame_Length.Min}-'
                     f'{load_hyper_parameters(os.path.join(ROOT, "Hyper_Parameter.yaml")).Train.Frame_Length.Max} frames; '
                     f'mean pickle {pickle_bytes / len(pickles) / 1024:.0f} KiB)')
        print(line)
    print('command: python benchmarks/packed_loader.py ' + ' '.join(
        f'--{key} {getattr(args, key)}' for key in ('speakers', 'utterances', 'batches', 'warmup', 'rounds', 'workers')))


def million(args, folder: str) -> None:
    """An N-pattern store whose part is sparse: index and metadata real, mels zero."""
    root, count, frames = os.path.join(folder, 'million'), args.million, 500
    os.makedirs(os.path.join(root, 'SYN'))
    per_speaker = 100
    keys = [f'SYN/{patterns.pattern_name("SYN", f"S{index // per_speaker:06d}", f"{index % per_speaker:04d}")}'
            for index in range(count)]
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    metadata = {key: getattr(hp.Sound, key) for key in patterns.SOUND_KEYS}
    metadata.update({'File_List': keys, 'Mel_Length_Dict': dict.fromkeys(keys, frames),
                     'Dataset_Dict': dict.fromkeys(keys, 'SYN'),
                     'Speaker_Dict': {key: key.split('.')[1] for key in keys},
                     'File_List_by_Speaker_Dict': {('SYN', f'S{speaker:06d}'): keys[speaker * per_speaker:(speaker + 1) * per_speaker]
                                                   for speaker in range(count // per_speaker)}})
    atomic_files.write_atomically(os.path.join(root, 'METADATA.PICKLE'), pickle.dumps(metadata, protocol=patterns.PICKLE_PROTOCOL))
    del metadata
    store = pattern_store.store_folder(root)
    os.makedirs(store)
    with open(os.path.join(store, 'g0-all0.mels'), 'wb') as stream:
        stream.truncate(count * frames * hp.Sound.Mel_Dim * 4)
    started = time.perf_counter()
    with open(os.path.join(store, 'g0-all0.rows'), 'w', encoding='utf-8') as stream:
        stream.writelines(f'{key}\t{frames}\t0\t0\n' for key in keys)
    live = {key: ('g0-all0', index * frames, frames) for index, key in enumerate(keys)}
    pattern_store.commit(store, 0, live, ['g0-all0'], hp.Sound.Mel_Dim, 'METADATA.PICKLE',
                         atomic_files.file_digest(os.path.join(root, 'METADATA.PICKLE')),
                         pattern_store.folder_mtimes(root, ['SYN']), log=lambda message: None)
    commit = time.perf_counter() - started
    del live, keys
    index_bytes = os.path.getsize(os.path.join(store, 'index-0.npz'))
    print(f'{count} patterns of {frames} frames: rows + index + manifest written in {commit:.1f} s; index '
          f'{index_bytes / 2 ** 20:.0f} MiB; part {count * frames * hp.Sound.Mel_Dim * 4 / 2 ** 30:.0f} GiB (sparse here)')
    args.corpus = root
    code = ('import json, resource, sys, time, torch; sys.path.insert(0, sys.argv[1]); from ge2e_speaker import datasets; '
            'from ge2e_speaker.hyper_parameters import load_hyper_parameters; hp = load_hyper_parameters(sys.argv[1] + "/Hyper_Parameter.yaml"); '
            'hp.Train.Train_Pattern.Path = sys.argv[2]; started = time.perf_counter(); '
            'dataset = datasets.load_speaker_dataset(hp.Train.Train_Pattern, hp.Sound, 15, False, use_store=True); '
            'assert dataset.store is not None; opened = time.perf_counter() - started; '
            'rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; '
            'from ge2e_speaker import batches; loader = batches.training_batches(dataset, 64, 140, 180, 2, torch.device("cpu")); '
            'stream = iter(loader); [next(stream) for _ in range(20)]; del stream, loader; '
            'print(json.dumps({"open_s": opened, "rss_after_open_mib": rss / 1024, '
            '"peak_main_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))')
    result = json.loads(subprocess.run([sys.executable, '-c', code, ROOT, root], check=True, capture_output=True,
                                       text=True).stdout.strip().splitlines()[-1])
    print(f'loader over it (metadata + store index + dataset, 2 threads, 20 batches of 64 x 15): opened in '
          f'{result["open_s"]:.1f} s; peak RSS main {result["peak_main_mib"]:.0f} MiB (after opening '
          f'{result["rss_after_open_mib"]:.0f} MiB; no worker processes)')
    print(f'CPU: {cpu_name()}; command: python benchmarks/packed_loader.py --million {count}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default, meaning in (
            ('--speakers', 96, 'corpus speakers'), ('--utterances', 16, 'corpus patterns per speaker'),
            ('--batches', 12, 'timed batches per run'), ('--warmup', 2, 'batches before the clock starts (warm runs)'),
            ('--rounds', 2, None), ('--workers', 2, 'Train.Num_Workers: processes (pickles), threads (store)'),
            ('--batch_speakers', 64, None), ('--per_speaker', 15, None),
            ('--million', 0, 'instead: the index and loader memory of an N-pattern store')):
        parser.add_argument(flag, type=int, default=default, help=meaning)
    parser.add_argument('--child', choices=('pickles', 'store'), help=argparse.SUPPRESS)
    parser.add_argument('--corpus', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.source = args.child
        return child(args)
    with tempfile.TemporaryDirectory(prefix='packed_loader_') as folder:
        (million if args.million else loader_comparison)(args, folder)


if __name__ == '__main__':
    main()
