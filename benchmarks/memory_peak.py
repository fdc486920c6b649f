"""Peak memory of one pattern worker on a long recording (audio.mel_from_file in a fresh process).

    python benchmarks/memory_peak.py [--minutes 10] [--rate 48000]

Writes a speech-like 16-bit wav of that length, then runs two child processes: one that only
imports the project and reads the hyper-parameters (the baseline), one that also turns the wav into
a pattern, as a Pattern_Generate.py worker does. Prints each child's peak resident memory
(VmHWM), their difference, and the CPU model. Linux only.
"""
import argparse
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from fixtures.corpora import write_speech_like  # noqa: E402
from fixtures.memory import peak  # noqa: E402


def cpu_model() -> str:
    for line in subprocess.run(['lscpu'], capture_output=True, text=True).stdout.splitlines():
        if line.startswith('Model name'):
            return line.split(':', 1)[1].strip()
    return 'unknown'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--minutes', type=float, default=10)
    parser.add_argument('--rate', type=int, default=48000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='memory_peak_') as folder:
        wav = os.path.join(folder, 'long.wav')
        write_speech_like(wav, args.minutes * 60, args.rate)
        _, baseline = peak('')
        frames, worker = peak(wav)
    print(f'{args.minutes:g} min at {args.rate} Hz ({frames} frames): peak {worker:.0f} MB, '
          f'{worker - baseline:.0f} MB above the {baseline:.0f} MB of the imports '
          f'({(worker - baseline) / (args.minutes * 60):.2f} MB per second of audio)')
    print(f'CPU: {cpu_model()}')
    print(f'command: python benchmarks/memory_peak.py --minutes {args.minutes:g} --rate {args.rate}')


if __name__ == '__main__':
    main()
