"""Peak memory of one pattern worker on a long recording (Audio.mel_from_file in a fresh process).

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

import numpy as np
import soundfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The child reads its peak from VmHWM (Linux): unlike ru_maxrss, it starts afresh at exec, so
# it does not count the memory of the process that started the child.
CHILD = '''
import sys
import Audio
from Hyper_Parameters import load_hyper_parameters
sound = load_hyper_parameters('Hyper_Parameter.yaml').Sound
frames = Audio.mel_from_file(sys.argv[1], sound, 15).shape[0] if sys.argv[1] else 0
with open('/proc/self/status') as status:
    print(frames, next(line.split()[1] for line in status if line.startswith('VmHWM:')))
'''


def write_speech_like(path: str, seconds: float, rate: int) -> None:
    """Harmonic 'syllables' of 0.2-0.6 s with pauses, written a second at a time."""
    rng = np.random.default_rng(0)
    with soundfile.SoundFile(path, 'w', rate, 1, 'PCM_16') as stream:
        for second in range(int(seconds)):
            time = np.arange(rate) / rate + second
            pitch = 110 + 20 * np.sin(2 * np.pi * 0.3 * time)
            phase = 2 * np.pi * np.cumsum(pitch) / rate
            sound = sum(0.6 ** harmonic * np.sin(harmonic * phase) for harmonic in range(1, 10))
            gate = (np.sin(2 * np.pi * rng.uniform(1.5, 3.0) * time) > -0.3).astype(np.float64)
            stream.write(0.2 * sound * gate + 0.001 * rng.standard_normal(rate))


def peak(wav: str) -> tuple:
    """(frames, peak resident MB) of a fresh process that makes the pattern of wav ('' for none)."""
    result = subprocess.run([sys.executable, '-c', CHILD, wav], cwd=ROOT, capture_output=True, text=True, check=True,
                            env={**os.environ, 'OMP_NUM_THREADS': '1'})
    frames, kilobytes = result.stdout.split()
    return int(frames), int(kilobytes) / 1024


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
