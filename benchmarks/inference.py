"""Utterances per second from audio file to embedding: this project's Inference.py against Resemblyzer.

    pip install --no-deps -r benchmarks/requirements.txt     # Resemblyzer, for this benchmark only
    python benchmarks/inference.py                           # 200 utterances of 2-6 s
    python benchmarks/inference.py --files 500 --audio /tmp/bench_audio --threads 1 2
    python benchmarks/inference.py --sizes 480 1920 --audio /tmp/bench_audio --rounds 3   # whole processes

The utterances are synthetic speech (eSpeak NG through demo_corpus/speech_synth.py: 20 voices, 10
utterances each, three in four at 48 kHz and one at 16 kHz), or voice-like numpy signals when eSpeak NG is not available.
Both systems embed the same files, each in a fresh process, timed from file paths to embeddings
after the model is loaded and warmed up on a few files:

    this project: load_encoder(...).embed_files(paths)  (decoding workers + batched encoder)
    Resemblyzer:  VoiceEncoder().embed_utterance(preprocess_wav(path)) per file, its documented use

Each runs at every torch thread count given (this project also at each decoding-worker count,
in float32 and in bfloat16) on the first --sweep-files files; then the best configuration of each
runs on all the files, in turn (who goes first alternates), for --rounds rounds, so that a busy
spell of a shared machine hits every system alike; the ratio is the median of the rounds'. float32 (the default, exact) is the figure compared with Resemblyzer. A
randomly initialised encoder stands in for a trained one (the speed does not depend on the
weights) unless -c names a checkpoint. The CPU time per utterance (process and decoding workers,
user + system) is printed too: it depends less than the rate on what else the machine runs.

--sizes N1 N2 times whole processes instead, in steady state (benchmarks/steady_state.py): this
project as `python Inference.py -c CKPT -i LIST -o OUT --no-plot` with its defaults
(cpu_defaults.py: workers and threads from the cores and the precision; `--precision bfloat16`
for the bfloat16 row), Resemblyzer as a process that loads its VoiceEncoder and embeds every file
(preprocess_wav, embed_utterance) into one .npy, at its best thread count (the fastest of
--threads on the --sweep-files files, timed as above). Each runs on the first N1 and the first N2
files; the rate is (N2 - N1) / (t2 - t1), start-up excluded; the systems run in turn for --rounds
rounds and the ratio to Resemblyzer is reported for every round and as their median.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SENTENCES = [
    'The small boat drifted slowly toward the quiet harbour at dawn.',
    'Please bring the blue folder from the second shelf in my office.',
    'A warm wind carried the smell of rain across the open fields.',
    'He counted the coins twice before handing them to the clerk.',
    'Our train leaves at seven, so we should pack the bags tonight.',
    'The children built a tall tower of wooden blocks on the floor.',
    'She painted the old fence white and planted roses beside it.',
    'Every morning the baker opens his shop before the sun rises.',
    'The museum keeps a large collection of maps from distant lands.',
    'Turn left at the bridge, then follow the river for two miles.',
    'Fresh bread and strong coffee make a simple and pleasant breakfast.',
    'The committee will announce its decision at the end of the month.',
]
VOICES = ['en', 'en-us', 'en-gb-scotland', 'en-gb-x-rp', 'en-029']
VARIANTS = ['m1', 'm3', 'f2', 'f4']
SAMPLE_RATE = 16000


def file_rate(number: int) -> int:
    """Three files in four at 48 kHz (as VCTK ships), the fourth at 16 kHz (as VoxCeleb): both
    resampling paths are timed."""
    return SAMPLE_RATE if number % 4 == 3 else 48000


def espeak_corpus(folder: str, files: int, speakers: int = 20) -> list:
    """Synthetic speech from eSpeak NG (demo_corpus/speech_synth.py), 2-6 s each, as PCM-16 wav files at
    48 or 16 kHz (file_rate)."""
    import soundfile
    import soxr
    from demo_corpus.speech_synth import synthesize
    paths = []
    for number in range(files):
        speaker, utterance = number % speakers, number // speakers
        voice = f'{VOICES[speaker % len(VOICES)]}+{VARIANTS[speaker // len(VOICES) % len(VARIANTS)]}'
        settings = dict(voice=voice, rate=140 + 9 * (speaker % 7), pitch=30 + 5 * (speaker % 9), seed=number)
        rng = np.random.default_rng(number)
        target = rng.uniform(2.0, 6.0)
        speech, rate = synthesize(SENTENCES[(speaker + utterance) % len(SENTENCES)], **settings)
        while len(speech) < target * rate:
            speech = np.concatenate([speech, synthesize(SENTENCES[rng.integers(len(SENTENCES))], **settings)[0]])
        speech = soxr.resample(speech[:int(target * rate)], rate, file_rate(number))
        silence = np.zeros(int(0.2 * file_rate(number)), np.float32)
        path = os.path.join(folder, f'speaker{speaker:02d}', f'{utterance:03d}.wav')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        soundfile.write(path, np.concatenate([silence, speech, silence]), file_rate(number), subtype='PCM_16')
        paths.append(path)
    return paths


def numpy_corpus(folder: str, files: int, speakers: int = 20) -> list:
    """Voice-like harmonic signals (fixtures/corpora.py) of 2-6 s, when eSpeak NG is unavailable."""
    from fixtures.corpora import voice, write
    paths = []
    for number in range(files):
        seconds = np.random.default_rng(number).uniform(2.0, 6.0)
        path = os.path.join(folder, f'speaker{number % speakers:02d}', f'{number // speakers:03d}.wav')
        rate = file_rate(number)
        paths.append(write(path, voice(number % speakers, number // speakers, seconds, rate=rate), rate))
    return paths


def corpus(folder: str, files: int) -> tuple[list, str]:
    listing = os.path.join(folder, 'files.txt')
    if os.path.isfile(listing):
        with open(listing, encoding='utf-8') as stream:
            paths = stream.read().split('\n')[:-1]
        if len(paths) >= files and all(os.path.isfile(path) for path in paths[:files]):
            return paths[:files], 'existing files'
    try:
        paths, kind = espeak_corpus(folder, files), 'eSpeak NG speech'
    except (ImportError, OSError, RuntimeError) as error:   # speech_synth.SynthesisError is a RuntimeError
        print(f'eSpeak NG unavailable ({error}); using numpy signals')
        paths, kind = numpy_corpus(folder, files), 'numpy voice-like signals'
    with open(listing, 'w', encoding='utf-8') as stream:
        stream.write(''.join(f'{path}\n' for path in paths))
    return paths, kind


# ---------------------------------------------------------------------------------------------
# One timed run, in its own process

WARM_UP_FILES = 8


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the decoding workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_project(paths: list, threads: int, workers: int, precision: str, checkpoint: str) -> dict:
    import torch
    torch.set_num_threads(threads)
    from ge2e_speaker.embedding import load_encoder
    encoder = load_encoder(checkpoint, os.path.join(ROOT, 'Hyper_Parameter.yaml'), device='cpu', workers=workers,
                           precision=precision)
    encoder.embed_files(paths[:WARM_UP_FILES])
    started, cpu = time.perf_counter(), cpu_seconds()
    embeddings = encoder.embed_files(paths)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    assert embeddings.shape == (len(paths), encoder.embedding_size) and np.isfinite(embeddings).all()
    return {'rate': len(paths) / seconds, 'cpu_ms': 1000 * cpu / len(paths)}


def time_resemblyzer(paths: list, threads: int) -> dict:
    import torch
    torch.set_num_threads(threads)
    from resemblyzer import VoiceEncoder, preprocess_wav
    encoder = VoiceEncoder('cpu', verbose=False)
    for path in paths[:WARM_UP_FILES]:
        encoder.embed_utterance(preprocess_wav(path))
    started, cpu = time.perf_counter(), cpu_seconds()
    embeddings = [encoder.embed_utterance(preprocess_wav(path)) for path in paths]
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    assert len(embeddings) == len(paths)
    return {'rate': len(paths) / seconds, 'cpu_ms': 1000 * cpu / len(paths)}


def whole_resemblyzer(paths: list, threads: int, output: str) -> None:
    """Resemblyzer as a user runs it, a whole process: load the encoder, embed every file, save."""
    import torch
    torch.set_num_threads(threads)
    from resemblyzer import VoiceEncoder, preprocess_wav
    encoder = VoiceEncoder('cpu', verbose=False)
    np.save(output, np.stack([encoder.embed_utterance(preprocess_wav(path)) for path in paths]))


def steady_state(args, paths: list, kind: str, temporary: str, checkpoint: str) -> None:
    """--sizes: whole processes on two corpus sizes, in turn, several rounds (module docstring)."""
    import shutil
    from steady_state import cpu_description, report, run_rounds, timed_process
    small, large = sorted(args.sizes)
    assert len(paths) >= large, f'{len(paths)} files, {large} needed'
    lists = {}
    for size in (small, large):   # Inference.py's list file ('path label') and Resemblyzer's paths
        lists[size] = os.path.join(temporary, f'list_{size}.txt'), os.path.join(temporary, f'paths_{size}.txt')
        with open(lists[size][0], 'w', encoding='utf-8') as stream:
            stream.write(''.join(f'{path} {os.path.basename(os.path.dirname(path))}\n' for path in paths[:size]))
        with open(lists[size][1], 'w', encoding='utf-8') as stream:
            stream.write(''.join(f'{path}\n' for path in paths[:size]))
    for path in paths[:large]:   # into the page cache before any run
        with open(path, 'rb') as stream:
            stream.read()
    threads = args.threads[0]
    if len(args.threads) > 1 and not args.skip_resemblyzer:
        with open(os.path.join(temporary, 'sweep.txt'), 'w', encoding='utf-8') as stream:
            stream.write(''.join(f'{path}\n' for path in paths[:args.sweep_files]))
        sweep = {count: measure(('resemblyzer', 'float32', count, 0), os.path.join(temporary, 'sweep.txt'), checkpoint)['rate']
                 for count in args.threads}
        threads = max(sweep, key=lambda count: sweep[count] if sweep[count] == sweep[count] else -1.0)
        print(f'Resemblyzer sweep, {args.sweep_files} utterances: ' + ', '.join(
            f'{count} thread(s) {rate:.1f} utterances/s' for count, rate in sweep.items()) + f': {threads} thread(s)')
    environment = {key: value for key, value in os.environ.items() if key != 'OMP_NUM_THREADS'}   # the defaults
    output = os.path.join(temporary, 'output')

    def project(precision):
        def run(size):
            shutil.rmtree(output, ignore_errors=True)
            result = timed_process([sys.executable, 'Inference.py', '-c', checkpoint, '-hp', os.path.join(ROOT, 'Hyper_Parameter.yaml'),
                                    '-i', lists[size][0], '-o', output, '--no-plot', '--precision', precision], cwd=ROOT, env=environment)
            assert np.load(os.path.join(output, 'embeddings.npy'), mmap_mode='r').shape[0] == size
            return result
        return run

    def resemblyzer(size):
        target = os.path.join(temporary, 'resemblyzer.npy')
        result = timed_process([sys.executable, os.path.abspath(__file__), '--whole-resemblyzer', target, '--paths',
                                lists[size][1], '--run-threads', str(threads)], cwd=ROOT, env=environment)
        assert np.load(target).shape[0] == size
        return result

    systems = {f'Inference.py {precision}': project(precision) for precision in args.precisions}
    reference = f'Resemblyzer ({threads} thread(s))'
    if not args.skip_resemblyzer:
        systems[reference] = resemblyzer
    from ge2e_speaker.cpu_defaults import choose
    defaults = {precision: choose(precision == 'bfloat16') for precision in args.precisions}
    print(f'{len(paths[:large])} utterances of {kind} ({sum(file_rate(n) == 48000 for n in range(large))} at 48 kHz, the rest at '
          f'16 kHz); whole processes on the first {small} and all {large}; CPU: {cpu_description()}')
    print('Inference.py defaults (cpu_defaults.py): ' + '; '.join(
        f'{precision}: {d.inference_threads} torch thread(s), {d.inference_workers} decoding worker(s)' for precision, d in defaults.items()))
    print(f'Rounds (whole-run seconds on {small} / {large} files -> steady-state utterances/s):')
    rates, cpu_ms = run_rounds(systems, [small, large], args.rounds, reference if not args.skip_resemblyzer else next(iter(systems)),
                               'utterances/s')
    report(rates, cpu_ms, reference if not args.skip_resemblyzer else next(iter(systems)), 'utterances/s')
    print('Command: python ' + ' '.join(sys.argv))


def measure(configuration: tuple, paths_file: str, checkpoint: str) -> dict:
    """Runs (system, precision, threads, workers) in a fresh Python process; returns its
    utterances/s ('rate') and CPU milliseconds per utterance ('cpu_ms'), nan when it failed."""
    system, precision, threads, workers = configuration
    command = [sys.executable, os.path.abspath(__file__), '--run', system, '--paths', paths_file, '-c', checkpoint,
               '--run-threads', str(threads), '--run-workers', str(workers), '--run-precision', precision]
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    if process.returncode != 0:
        print(f'  {system} failed: {process.stderr.strip().splitlines()[-1] if process.stderr.strip() else "?"}')
        return {'rate': float('nan'), 'cpu_ms': float('nan')}
    return json.loads(process.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--files', type=int, default=200)
    parser.add_argument('--audio', help='folder for the generated audio (kept and reused); default a temporary one')
    parser.add_argument('-c', '--checkpoint', help='a checkpoint of this project (default: a random encoder)')
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2], help='torch thread counts to try (default 1 2)')
    parser.add_argument('--workers', type=int, nargs='+', default=None, help='decoding worker counts to try for this project (default 1, 2 and cores - 1)')
    parser.add_argument('--precisions', nargs='+', default=['float32', 'bfloat16'], choices=['float32', 'bfloat16'],
                        help="this project's encoder precisions to try (default both; float32 is the one compared)")
    parser.add_argument('--sweep-files', type=int, default=30, help='utterances per run when choosing the configurations (default 30)')
    parser.add_argument('--rounds', type=int, default=5, help='rounds of the best configurations in turn (default 5)')
    parser.add_argument('--skip-resemblyzer', action='store_true')
    parser.add_argument('--sizes', type=int, nargs=2, metavar=('N1', 'N2'),
                        help='whole processes in steady state on the first N1 and N2 files (e.g. 480 1920): module docstring')
    parser.add_argument('--whole-resemblyzer', help=argparse.SUPPRESS)
    parser.add_argument('--run', help=argparse.SUPPRESS)
    parser.add_argument('--paths', help=argparse.SUPPRESS)
    parser.add_argument('--run-threads', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--run-workers', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--run-precision', help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.whole_resemblyzer:   # a child process: Resemblyzer, whole
        with open(args.paths, encoding='utf-8') as stream:
            whole_resemblyzer(stream.read().split('\n')[:-1], args.run_threads, args.whole_resemblyzer)
        return
    if args.run:   # a child process: one configuration
        with open(args.paths, encoding='utf-8') as stream:
            paths = stream.read().split('\n')[:-1]
        result = (time_project(paths, args.run_threads, args.run_workers, args.run_precision, args.checkpoint)
                  if args.run == 'project' else time_resemblyzer(paths, args.run_threads))
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory() as temporary:
        folder = args.audio or os.path.join(temporary, 'audio')
        os.makedirs(folder, exist_ok=True)
        paths, kind = corpus(folder, max(args.sizes) if args.sizes else args.files)
        paths_file = os.path.join(temporary, 'paths.txt')
        with open(paths_file, 'w', encoding='utf-8') as stream:
            stream.write(''.join(f'{path}\n' for path in paths))
        seconds = [__import__('soundfile').info(path).duration for path in paths]
        checkpoint = args.checkpoint
        if checkpoint is None:
            import torch
            from ge2e_speaker.hyper_parameters import load_hyper_parameters
            from ge2e_speaker.modules import Encoder
            torch.manual_seed(0)
            checkpoint = os.path.join(temporary, 'S_0.pkl')
            model = Encoder.from_hyper_parameters(load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml')))
            torch.save({'Model': model.state_dict(), 'Steps': 0}, checkpoint)
        if args.sizes:
            steady_state(args, paths, kind, temporary, checkpoint)
            return
        cores = os.cpu_count() or 1
        print(f'{len(paths)} utterances of {kind}, {min(seconds):.1f}-{max(seconds):.1f} s '
              f'(mean {np.mean(seconds):.1f} s); {cores} CPU cores')

        workers = args.workers or sorted({1, 2, max(1, cores - 1)})
        sweep_file = os.path.join(temporary, 'sweep.txt')
        with open(sweep_file, 'w', encoding='utf-8') as stream:
            stream.write(''.join(f'{path}\n' for path in paths[:args.sweep_files]))
        # 1. Each configuration once, on the first files: the best of each system.
        configurations = [('project', precision, threads, worker_count) for precision in args.precisions
                          for threads in args.threads for worker_count in workers]
        configurations += [] if args.skip_resemblyzer else [('resemblyzer', 'float32', threads, 0) for threads in args.threads]
        print(f'Sweep, {min(len(paths), args.sweep_files)} utterances per run:')
        sweep = {}
        for configuration in configurations:
            result = measure(configuration, sweep_file, checkpoint)
            sweep[configuration] = result['rate']
            print(f'  {describe(configuration)}: {result["rate"]:.1f} utterances/s, {result["cpu_ms"]:.1f} CPU ms each')
        best = {}
        for configuration, rate in sweep.items():
            group = configuration[:2]
            if rate == rate and rate > sweep.get(best.get(group), -1.0):
                best[group] = configuration
        # 2. The best configurations in turn, all files, several rounds: a busy spell of the shared
        #    machine hits both systems alike, and the ratio is taken within a round.
        print(f'Best configurations in turn, {len(paths)} utterances per run:')
        rounds = []
        for number in range(args.rounds):
            order = list(best.items()) if number % 2 == 0 else list(best.items())[::-1]   # alternate who goes first
            results = {group: measure(configuration, paths_file, checkpoint) for group, configuration in order}
            results = {group: results[group] for group in best}
            rounds.append(results)
            print(f'  round {number + 1}: ' + '; '.join(f'{describe(best[group])}: {result["rate"]:.1f} utterances/s, '
                                                        f'{result["cpu_ms"]:.1f} CPU ms each' for group, result in results.items()))

    theirs = ('resemblyzer', 'float32')
    for group, configuration in best.items():
        rates = [results[group]['rate'] for results in rounds]
        cpu = np.median([results[group]['cpu_ms'] for results in rounds])
        line = f'{describe(configuration)}: best {max(rates):.1f} utterances/s, median {cpu:.1f} CPU ms per utterance'
        if group != theirs and theirs in best:
            ratios = [results[group]['rate'] / results[theirs]['rate'] for results in rounds]
            their_cpu = np.median([results[theirs]['cpu_ms'] for results in rounds])
            line += (f'; {np.median(ratios):.2f}x Resemblyzer\'s rate (median of the rounds; {min(ratios):.2f}x to '
                     f'{max(ratios):.2f}x; best against best {max(rates) / max(r[theirs]["rate"] for r in rounds):.2f}x), '
                     f'{their_cpu / cpu:.2f}x less CPU time')
        print(line)
    if not args.skip_resemblyzer and theirs not in best:
        print('Resemblyzer did not run (pip install --no-deps -r benchmarks/requirements.txt)')
    print('Command: python ' + ' '.join(sys.argv))


def describe(configuration) -> str:
    system, precision, threads, workers = configuration
    if system == 'resemblyzer':
        return f'Resemblyzer, {threads} torch thread(s)'
    return f'this project {precision}, {threads} torch thread(s), {workers} decoding worker(s)'


if __name__ == '__main__':
    main()
