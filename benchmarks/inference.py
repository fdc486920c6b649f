"""Utterances per second from audio file to embedding: this project's Inference.py against Resemblyzer.

    pip install --no-deps -r benchmarks/requirements.txt     # Resemblyzer, for this benchmark only
    python benchmarks/inference.py                           # 200 utterances of 2-6 s
    python benchmarks/inference.py --files 500 --audio /tmp/bench_audio --threads 1 2

The utterances are synthetic speech (eSpeak NG through the espeakng-loader package: 20 voices,
10 sentences each, 16 kHz wav), or voice-like numpy signals when eSpeak NG is not available.
Both systems embed the same files, each in a fresh process, timed from file paths to embeddings
after the model is loaded and warmed up on a few files:

    this project: load_encoder(...).embed_files(paths)  (decoding workers + batched encoder)
    Resemblyzer:  VoiceEncoder().embed_utterance(preprocess_wav(path)) per file, its documented use

Each runs at every torch thread count given (this project also at each decoding-worker count,
in float32 and in bfloat16); the best rate of each is reported. float32 (the default, exact) is
the figure compared with Resemblyzer. A randomly initialised encoder stands in for a trained one (the speed
does not depend on the weights) unless -c names a checkpoint.
"""
import argparse
import ctypes
import json
import os
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


def espeak_corpus(folder: str, files: int, speakers: int = 20) -> list:
    """Synthetic speech from eSpeak NG (ctypes), 2-6 s each, as 16 kHz PCM-16 wav files."""
    import espeakng_loader
    import soundfile
    import soxr
    library = ctypes.CDLL(espeakng_loader.get_library_path())
    rate = library.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)   # 2: synchronous
    if rate <= 0:
        raise RuntimeError('eSpeak NG did not start')
    chunks = []
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def collect(wave, count, _events):
        if count > 0:
            chunks.append(np.ctypeslib.as_array(wave, shape=(count,)).copy())
        return 0
    callback = callback_type(collect)
    library.espeak_SetSynthCallback(callback)

    def speak(text: str) -> np.ndarray:
        chunks.clear()
        encoded = text.encode()
        library.espeak_Synth(encoded, len(encoded) + 1, 0, 1, 0, 0, None, None)   # 1: positions in characters
        library.espeak_Synchronize()
        return np.concatenate(chunks).astype(np.float32) / 32768

    paths = []
    for number in range(files):
        speaker, utterance = number % speakers, number // speakers
        library.espeak_SetVoiceByName(f'{VOICES[speaker % len(VOICES)]}+{VARIANTS[speaker // len(VOICES) % len(VARIANTS)]}'.encode())
        library.espeak_SetParameter(1, 140 + 9 * (speaker % 7), 0)          # words per minute
        library.espeak_SetParameter(3, 30 + 5 * (speaker % 9), 0)           # pitch 0-100
        rng = np.random.default_rng(number)
        target = rng.uniform(2.0, 6.0)
        speech = speak(SENTENCES[(speaker + utterance) % len(SENTENCES)])
        while len(speech) < target * rate:
            speech = np.concatenate([speech, speak(SENTENCES[rng.integers(len(SENTENCES))])])
        speech = soxr.resample(speech[:int(target * rate)], rate, SAMPLE_RATE)
        silence = np.zeros(int(0.2 * SAMPLE_RATE), np.float32)
        path = os.path.join(folder, f'speaker{speaker:02d}', f'{utterance:03d}.wav')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        soundfile.write(path, np.concatenate([silence, speech, silence]), SAMPLE_RATE, subtype='PCM_16')
        paths.append(path)
    return paths


def numpy_corpus(folder: str, files: int, speakers: int = 20) -> list:
    """Voice-like harmonic signals (tests/corpora.py) of 2-6 s, when eSpeak NG is unavailable."""
    sys.path.insert(0, os.path.join(ROOT, 'tests'))
    from corpora import voice, write
    paths = []
    for number in range(files):
        seconds = np.random.default_rng(number).uniform(2.0, 6.0)
        path = os.path.join(folder, f'speaker{number % speakers:02d}', f'{number // speakers:03d}.wav')
        paths.append(write(path, voice(number % speakers, number // speakers, seconds), SAMPLE_RATE))
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
    except (ImportError, OSError, RuntimeError) as error:
        print(f'eSpeak NG unavailable ({error}); using numpy signals')
        paths, kind = numpy_corpus(folder, files), 'numpy voice-like signals'
    with open(listing, 'w', encoding='utf-8') as stream:
        stream.write(''.join(f'{path}\n' for path in paths))
    return paths, kind


# ---------------------------------------------------------------------------------------------
# One timed run, in its own process

WARM_UP_FILES = 8


def time_project(paths: list, threads: int, workers: int, precision: str, checkpoint: str) -> float:
    import torch
    torch.set_num_threads(threads)
    from Inference import load_encoder
    encoder = load_encoder(checkpoint, os.path.join(ROOT, 'Hyper_Parameter.yaml'), workers=workers, precision=precision)
    encoder.embed_files(paths[:WARM_UP_FILES])
    started = time.perf_counter()
    embeddings = encoder.embed_files(paths)
    seconds = time.perf_counter() - started
    assert embeddings.shape == (len(paths), encoder.embedding_size) and np.isfinite(embeddings).all()
    return len(paths) / seconds


def time_resemblyzer(paths: list, threads: int) -> float:
    import torch
    torch.set_num_threads(threads)
    from resemblyzer import VoiceEncoder, preprocess_wav
    encoder = VoiceEncoder('cpu', verbose=False)
    for path in paths[:WARM_UP_FILES]:
        encoder.embed_utterance(preprocess_wav(path))
    started = time.perf_counter()
    embeddings = [encoder.embed_utterance(preprocess_wav(path)) for path in paths]
    seconds = time.perf_counter() - started
    assert len(embeddings) == len(paths)
    return len(paths) / seconds


def measure(system: str, paths_file: str, threads: int, checkpoint: str, workers: int = 0, precision: str = 'float32') -> float:
    """Runs one configuration in a fresh Python process; returns utterances/s (nan when it failed)."""
    command = [sys.executable, os.path.abspath(__file__), '--run', system, '--paths', paths_file, '-c', checkpoint,
               '--run-threads', str(threads), '--run-workers', str(workers), '--run-precision', precision]
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    if process.returncode != 0:
        print(f'  {system} failed: {process.stderr.strip().splitlines()[-1] if process.stderr.strip() else "?"}')
        return float('nan')
    return json.loads(process.stdout.strip().splitlines()[-1])['rate']


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--files', type=int, default=200)
    parser.add_argument('--audio', help='folder for the generated audio (kept and reused); default a temporary one')
    parser.add_argument('-c', '--checkpoint', help='a checkpoint of this project (default: a random encoder)')
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2], help='torch thread counts to try (default 1 2)')
    parser.add_argument('--workers', type=int, nargs='+', default=None, help='decoding worker counts to try for this project (default 1, 2 and cores - 1)')
    parser.add_argument('--precisions', nargs='+', default=['float32', 'bfloat16'], choices=['float32', 'bfloat16'],
                        help="this project's encoder precisions to try (default both; float32 is the one compared)")
    parser.add_argument('--repeats', type=int, default=2, help='timed runs per configuration; the best counts')
    parser.add_argument('--skip-resemblyzer', action='store_true')
    parser.add_argument('--run', help=argparse.SUPPRESS)
    parser.add_argument('--paths', help=argparse.SUPPRESS)
    parser.add_argument('--run-threads', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--run-workers', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--run-precision', help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run:   # a child process: one configuration
        with open(args.paths, encoding='utf-8') as stream:
            paths = stream.read().split('\n')[:-1]
        rate = (time_project(paths, args.run_threads, args.run_workers, args.run_precision, args.checkpoint)
                if args.run == 'project'
                else time_resemblyzer(paths, args.run_threads))
        print(json.dumps({'rate': rate}))
        return

    with tempfile.TemporaryDirectory() as temporary:
        folder = args.audio or os.path.join(temporary, 'audio')
        os.makedirs(folder, exist_ok=True)
        paths, kind = corpus(folder, args.files)
        paths_file = os.path.join(temporary, 'paths.txt')
        with open(paths_file, 'w', encoding='utf-8') as stream:
            stream.write(''.join(f'{path}\n' for path in paths))
        seconds = [__import__('soundfile').info(path).duration for path in paths]
        checkpoint = args.checkpoint
        if checkpoint is None:
            import torch
            from Hyper_Parameters import load_hyper_parameters
            from Modules import Encoder
            torch.manual_seed(0)
            checkpoint = os.path.join(temporary, 'S_0.pkl')
            model = Encoder.from_hyper_parameters(load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml')))
            torch.save({'Model': model.state_dict(), 'Steps': 0}, checkpoint)
        cores = os.cpu_count() or 1
        print(f'{len(paths)} utterances of {kind}, {min(seconds):.1f}-{max(seconds):.1f} s '
              f'(mean {np.mean(seconds):.1f} s); {cores} CPU cores')

        workers = args.workers or sorted({1, 2, max(1, cores - 1)})
        results = {}
        for threads in args.threads:       # the systems alternate, so that a busy spell hurts both
            for precision in args.precisions:
                for worker_count in workers:
                    rate = max(measure('project', paths_file, threads, checkpoint, worker_count, precision)
                               for _ in range(args.repeats))
                    print(f'  this project, {precision}: {threads} torch thread(s), {worker_count} decoding '
                          f'worker(s): {rate:.1f} utterances/s')
                    results[('project', precision, threads, worker_count)] = rate
            if not args.skip_resemblyzer:
                rate = max(measure('resemblyzer', paths_file, threads, checkpoint) for _ in range(args.repeats))
                print(f'  Resemblyzer: {threads} torch thread(s): {rate:.1f} utterances/s')
                results[('resemblyzer', 'float32', threads, 0)] = rate

    def best(system, precision):
        rates = {key: rate for key, rate in results.items() if key[:2] == (system, precision) and rate == rate}
        return max(rates.items(), key=lambda item: item[1]) if rates else (None, float('nan'))
    theirs_key, theirs = best('resemblyzer', 'float32')
    if not args.skip_resemblyzer:
        if theirs_key is None:
            print('Resemblyzer did not run (pip install --no-deps -r benchmarks/requirements.txt)')
        else:
            print(f'Resemblyzer, best: {theirs:.1f} utterances/s ({theirs_key[2]} torch thread(s))')
    for precision in args.precisions:
        key, ours = best('project', precision)
        if key is not None:
            ratio = f'; {ours / theirs:.2f}x Resemblyzer' if theirs_key is not None else ''
            print(f'This project ({precision}), best: {ours:.1f} utterances/s ({key[2]} torch thread(s), '
                  f'{key[3]} decoding worker(s)){ratio}')
    print('Command: python ' + ' '.join(sys.argv))


if __name__ == '__main__':
    main()
