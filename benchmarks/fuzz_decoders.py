"""Fuzzed audio through Pattern_Generate.py and Inference.py: every file embedded or named with a reason.

    python benchmarks/fuzz_decoders.py                       # 2,000 files, seed 0
    python benchmarks/fuzz_decoders.py --files 5000 --seed 3 --per-file 5

Builds --files files from real recordings (tests/data/real_voices: LibriSpeech-free FLAC, see its
README) encoded as WAV, FLAC, MP3 and OGG, then damaged, drawn with the seed:

  intact         the encoded file as it is (the control)
  truncated      cut at a random byte (the header, the first block, the middle)
  rate_zero      the header's sample rate 0 (WAV fmt chunk, FLAC STREAMINFO; other formats: header bytes)
  rate_huge      the header's sample rate at its largest value
  channels_zero  the header's channel count 0 (WAV); others: header bytes
  channels_max   the header's channel count 65535 (WAV) or 8 (FLAC's largest)
  size_past_end  the data chunk's size far past the end of the file (WAV, RIFF size too)
  header_bytes   1-16 random bytes of the first 64 replaced
  body_bytes     1-64 random bytes anywhere replaced
  random_bytes   0-64 KiB of random bytes under an audio extension
  very_short     a valid file of 1-400 samples
  very_long      a valid 16-bit WAV of 10 minutes (at most --long-files of them, default 2)

They lie in 20 speaker folders. The same folder then goes through
`Pattern_Generate.py -folder` (patterns into a temporary root) and
`Inference.py -c EXAMPLE_CHECKPOINT -i DIR --no-plot` (the shipped encoder), each as a whole process
with a time limit of --per-file seconds per file (a hang shows as a run past it). A file's outcome
is 'embedded' (a pattern, or a row of embeddings_index.tsv) or the reason of the one line that
names it (Pattern_Generate's output, Inference's skipped.tsv). The benchmark fails (exit 1) when
a run ends in a traceback or past its time limit, when a file has no outcome or two, or when a
pattern or an embedding is not finite. It prints the files tried, the outcomes by damage and by
reason, and the seconds of each run.
"""
import argparse
import collections
import csv
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

from ge2e_speaker import EXAMPLE_CHECKPOINT  # noqa: E402
from steady_state import cpu_description  # noqa: E402

SOURCES = os.path.join(ROOT, 'tests', 'data', 'real_voices')
FORMATS = {'wav': ('WAV', 'PCM_16'), 'flac': ('FLAC', 'PCM_16'), 'mp3': ('MP3', 'MPEG_LAYER_III'),
           'ogg': ('OGG', 'VORBIS')}
DAMAGES = ('intact', 'truncated', 'rate_zero', 'rate_huge', 'channels_zero', 'channels_max', 'size_past_end',
           'header_bytes', 'body_bytes', 'random_bytes', 'very_short', 'very_long')
LONG_FILES = 2


# ------------------------------------------------------------------------------ building the files

def encode(samples: np.ndarray, rate: int, extension: str) -> bytes:
    import soundfile
    buffer = io.BytesIO()
    container, subtype = FORMATS[extension]
    soundfile.write(buffer, samples, rate, format=container, subtype=subtype)
    return buffer.getvalue()


def source_recordings() -> list:
    """(samples, rate) of the real recordings the files are built from."""
    import soundfile
    recordings = []
    for folder, _, names in sorted(os.walk(SOURCES)):
        for name in sorted(names):
            if name.endswith('.flac'):
                samples, rate = soundfile.read(os.path.join(folder, name), dtype='float32')
                recordings.append((samples, rate))
    if not recordings:
        raise SystemExit(f'fuzz_decoders: no recordings under {SOURCES}')
    return recordings


def wav_fmt_offset(data: bytes) -> int:
    """Offset of the WAV 'fmt ' chunk's body, or -1."""
    index = data.find(b'fmt ')
    return index + 8 if index >= 0 and index + 24 <= len(data) else -1


def patch_header(data: bytearray, extension: str, damage: str, rng) -> bytearray:
    """The header field named by `damage` set to its bad value; formats without that field get
    random header bytes instead (so the file is damaged all the same)."""
    fmt = wav_fmt_offset(bytes(data)) if extension == 'wav' else -1
    if fmt >= 0 and damage == 'rate_zero':
        data[fmt + 4:fmt + 8] = struct.pack('<I', 0)
    elif fmt >= 0 and damage == 'rate_huge':
        data[fmt + 4:fmt + 8] = struct.pack('<I', 0xFFFFFFFF)
    elif fmt >= 0 and damage == 'channels_zero':
        data[fmt + 2:fmt + 4] = struct.pack('<H', 0)
    elif fmt >= 0 and damage == 'channels_max':
        data[fmt + 2:fmt + 4] = struct.pack('<H', 0xFFFF)
    elif fmt >= 0 and damage == 'size_past_end':
        chunk = data.find(b'data')
        data[4:8] = struct.pack('<I', 0xFFFFFFF0)
        if chunk >= 0:
            data[chunk + 4:chunk + 8] = struct.pack('<I', 0xFFFFFFF0)
    elif extension == 'flac' and data[:4] == b'fLaC' and damage in ('rate_zero', 'rate_huge', 'channels_max'):
        # STREAMINFO starts at byte 8: 10 bytes of block sizes, then 20 bits of rate, 3 of channels - 1
        bits = int.from_bytes(data[18:21], 'big')
        if damage == 'rate_zero':
            bits &= 0x00000F
        elif damage == 'rate_huge':
            bits |= 0xFFFFF0
        else:
            bits |= 0x00000E
        data[18:21] = bits.to_bytes(3, 'big')
    else:
        for _ in range(int(rng.integers(1, 17))):
            data[int(rng.integers(0, min(64, len(data))))] = int(rng.integers(0, 256))
    return data


def damaged_file(damage: str, extension: str, recordings: list, rng) -> bytes:
    samples, rate = recordings[int(rng.integers(len(recordings)))]
    if damage == 'random_bytes':
        return rng.bytes(int(rng.integers(0, 65537)))
    if damage == 'very_short':
        return encode(samples[:int(rng.integers(1, 401))], rate, extension)
    if damage == 'very_long':
        repeats = int(np.ceil(600 * rate / len(samples)))
        return encode(np.tile(samples, repeats)[:600 * rate], rate, 'wav')
    if rng.random() < 0.25:                      # stereo too: the channel paths
        samples = np.stack([samples, samples[::-1]], axis=1)
    data = bytearray(encode(samples, rate, extension))
    if damage == 'truncated':
        return bytes(data[:int(rng.integers(0, len(data)))])
    if damage == 'body_bytes':
        for _ in range(int(rng.integers(1, 65))):
            data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        return bytes(data)
    if damage == 'intact':
        return bytes(data)
    return bytes(patch_header(data, extension, damage, rng))


def build(folder: str, files: int, seed: int, long_files: int = LONG_FILES) -> dict:
    """Writes the fuzzed files under folder/<speaker>/, at most long_files of them very long;
    returns {path: damage}."""
    rng = np.random.default_rng(seed)
    recordings = source_recordings()
    built = {}
    for number in range(files):
        damage = DAMAGES[int(rng.integers(len(DAMAGES)))]
        if damage == 'very_long':
            damage = 'intact' if long_files == 0 else damage
            long_files -= damage == 'very_long'
        extension = 'wav' if damage == 'very_long' else list(FORMATS)[int(rng.integers(len(FORMATS)))]
        path = os.path.join(folder, f'speaker{number % 20:02d}', f'{number:05d}_{damage}.{extension}')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as stream:
            stream.write(damaged_file(damage, extension, recordings, rng))
        built[path] = damage
    return built


# ------------------------------------------------------------------------------ running the tools

def run(command: list, limit: float, cwd: str) -> dict:
    started = time.perf_counter()
    try:
        process = subprocess.run(command, capture_output=True, text=True, timeout=limit, cwd=cwd,
                                 env=dict(os.environ, PYTHONWARNINGS='ignore'))
        output, code = process.stdout + process.stderr, process.returncode
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b'').decode(errors='replace') + (error.stderr or b'').decode(errors='replace')
        code = None
    return {'output': output, 'code': code, 'seconds': time.perf_counter() - started}


def named_reasons(paths, lines) -> dict:
    """{path: [reasons]} of the output lines '<path>: <reason>' naming each path."""
    reasons = {path: [] for path in paths}
    for line in lines:
        head, separator, reason = line.partition(': ')
        if separator and head in reasons:
            reasons[head].append(reason)
    return reasons


def pattern_outcomes(built: dict, folder: str, work: str, limit: float) -> tuple:
    """Pattern_Generate.py -folder on the fuzzed folder: ({path: outcome}, run, problems)."""
    from ge2e_speaker import patterns
    from ge2e_speaker.hyper_parameters import load_hyper_parameters
    from fixtures.settings import save_hyper_parameters
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    hp.Train.Train_Pattern.Path = os.path.join(work, 'patterns', 'train')
    hp.Train.Eval_Pattern.Path = os.path.join(work, 'patterns', 'eval')
    settings = os.path.join(work, 'hp.yaml')
    save_hyper_parameters(hp, settings)
    result = run([sys.executable, os.path.join(ROOT, 'Pattern_Generate.py'), '-hp', settings,
                  '-folder', f'FUZZ={folder}'], limit, work)
    problems = []
    reasons = named_reasons(built, result['output'].splitlines())
    root = hp.Train.Train_Pattern.Path
    files = patterns.list_patterns(root) if os.path.isdir(root) else []
    for file in files:
        mel = patterns.load_pickle(os.path.join(root, file))['Mel']
        if not np.isfinite(mel).all():
            problems.append(f'{file}: a pattern with non-finite values')
    unnamed = [path for path, named in reasons.items() if not named]
    if len(files) != len(unnamed):
        problems.append(f'{len(files)} patterns written but {len(unnamed)} files not named with a reason')
    outcomes = {path: ('embedded' if not named else named[0].split(':')[0]) for path, named in reasons.items()}
    problems += [f'{path}: named {len(named)} times' for path, named in reasons.items() if len(named) > 1]
    return outcomes, result, problems


def inference_outcomes(built: dict, folder: str, work: str, limit: float) -> tuple:
    """Inference.py -i on the fuzzed folder: ({path: outcome}, run, problems)."""
    output = os.path.join(work, 'inference')
    result = run([sys.executable, os.path.join(ROOT, 'Inference.py'), '-c', EXAMPLE_CHECKPOINT, '-i', folder,
                  '-o', output, '--no-plot'], limit, work)
    problems, outcomes = [], {path: [] for path in built}
    index, skipped = os.path.join(output, 'embeddings_index.tsv'), os.path.join(output, 'skipped.tsv')
    if os.path.isfile(index):
        with open(index, encoding='utf-8', newline='') as stream:
            rows = list(csv.DictReader(stream, delimiter='\t'))
        embeddings = np.load(os.path.join(output, 'embeddings.npy'))
        if not np.isfinite(embeddings).all():
            problems.append('embeddings.npy holds non-finite values')
        if len(rows) != len(embeddings):
            problems.append(f'{len(rows)} index rows for {len(embeddings)} embeddings')
        for row in rows:
            outcomes.setdefault(os.path.abspath(row['path']), []).append('embedded')
    if os.path.isfile(skipped):
        with open(skipped, encoding='utf-8', newline='') as stream:
            for row in csv.DictReader(stream, delimiter='\t'):
                outcomes.setdefault(os.path.abspath(row['path']), []).append(row['reason'].split(':')[0])
    problems += [f'{path}: {len(found)} outcomes' for path, found in outcomes.items() if len(found) != 1]
    return {path: found[0] for path, found in outcomes.items() if found}, result, problems


def check_run(name: str, result: dict, limit: float) -> list:
    problems = []
    if result['code'] is None:
        problems.append(f'{name}: still running after {limit:.0f} s (a hang); stopped')
    elif result['code'] != 0:
        problems.append(f'{name}: exit status {result["code"]}')
    if 'Traceback (most recent call last)' in result['output']:
        problems.append(f'{name}: a traceback:\n' + result['output'][result['output'].find('Traceback'):][:2000])
    return problems


def fuzz(files: int, seed: int, per_file: float, long_files: int = LONG_FILES, log=print) -> dict:
    """Builds, runs both tools and returns {'outcomes': {tool: Counter of (damage, outcome)},
    'problems': [...], 'seconds': {tool: s}}."""
    work = tempfile.mkdtemp(prefix='fuzz_decoders_')
    try:
        folder = os.path.join(work, 'audio')
        started = time.perf_counter()
        built = build(folder, files, seed, long_files)
        log(f'{len(built)} files built from {SOURCES} in {time.perf_counter() - started:.1f} s (seed {seed})')
        limit = 60 + per_file * files
        report = {'outcomes': {}, 'problems': [], 'seconds': {}}
        for name, outcomes_of in (('Pattern_Generate.py', pattern_outcomes), ('Inference.py', inference_outcomes)):
            outcomes, result, problems = outcomes_of(built, folder, work, limit)
            problems += check_run(name, result, limit)
            problems += [f'{name}: {path}: no outcome' for path in built if path not in outcomes]
            report['outcomes'][name] = collections.Counter((built[path], outcome) for path, outcome in outcomes.items()
                                                           if path in built)
            report['problems'] += problems
            report['seconds'][name] = result['seconds']
        return report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--files', type=int, default=2000, help='fuzzed files to build (default 2000)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--per-file', type=float, default=2.0,
                        help='seconds per file of each whole run before it counts as a hang (default 2)')
    parser.add_argument('--long-files', type=int, default=LONG_FILES, help='at most this many 10-minute files (default 2)')
    args = parser.parse_args()
    report = fuzz(args.files, args.seed, args.per_file, args.long_files)
    for name, outcomes in report['outcomes'].items():
        total = sum(outcomes.values())
        embedded = sum(count for (damage, outcome), count in outcomes.items() if outcome == 'embedded')
        print(f'\n{name}: {total} files with an outcome in {report["seconds"][name]:.0f} s; {embedded} embedded')
        by_reason = collections.Counter()
        for (damage, outcome), count in outcomes.items():
            by_reason[outcome] += count
        print('  by reason: ' + ', '.join(f'{reason} {count}' for reason, count in by_reason.most_common()))
        for damage in DAMAGES:
            found = {outcome: count for (kind, outcome), count in outcomes.items() if kind == damage}
            if found:
                print(f'  {damage:14s} ' + ', '.join(f'{outcome} {count}' for outcome, count in
                                                      sorted(found.items(), key=lambda item: -item[1])))
    print(f'\nproblems: {len(report["problems"])}')
    for problem in report['problems'][:50]:
        print(f'  {problem}')
    print(f'command: python benchmarks/fuzz_decoders.py --files {args.files} --seed {args.seed} '
          f'--per-file {args.per_file} --long-files {args.long_files}')
    print(f'CPU: {cpu_description()}')
    return 1 if report['problems'] else 0


if __name__ == '__main__':
    sys.exit(main())
