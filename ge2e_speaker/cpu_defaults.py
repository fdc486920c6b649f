"""Thread and process counts that fit the CPU at hand: the one place where Train.py and
Inference.py choose their defaults, from the cores this process may use and whether the run
computes in bfloat16 (which needs a CPU with native bfloat16: runtime.cpu_has_bfloat16).

Measured on 2 cores of an AMD EPYC (Zen 5, AVX512-BF16), float32 standing for CPUs without
bfloat16 (README, "CPU defaults"): two torch threads and no extra process came within 10 % of the
best split in training and inference, in float32 and in bfloat16. A DataLoader worker beside two
torch threads made a training step 3-6 times slower: the encoder's OpenMP threads wait for each
other at every LSTM frame, so one thread that shares its core stalls both.
Above 2 cores (not measured here): training keeps one loader worker and gives the encoder the
other cores; inference's decoding workers take the cores its encoder does not need, about half of
them in float32 and two thirds in bfloat16, whose encoder costs about half as much.
"""
import os
from dataclasses import dataclass

# How long (busy-wait iterations) an idle OpenMP thread of libgomp, the OpenMP of torch's Linux
# wheels, spins before it sleeps; libgomp's own default is 300,000. Beside a CPU-bound process,
# two torch threads with that default ran the demo's step at 0.16x and Inference at 0.10x of
# their quiet speed; with 1000 at 0.54x and 0.62x, at 0.98x and 1.01x of the default's quiet
# speed (benchmarks/busy_core.py, 2 cores of an Intel Xeon with AMX; docs/train.md).
OPENMP_SPIN_COUNT = '1000'


def prefer_short_openmp_spins(environment=os.environ) -> None:
    """GOMP_SPINCOUNT=OPENMP_SPIN_COUNT unless the user set it. libgomp reads it when torch loads,
    so this runs before torch is imported (ge2e_speaker/__init__.py); code that imports torch first
    sets GOMP_SPINCOUNT=1000 in its environment itself."""
    environment.setdefault('GOMP_SPINCOUNT', OPENMP_SPIN_COUNT)


@dataclass(frozen=True)
class CpuDefaults:
    """train_threads, train_workers: torch (OpenMP) threads and DataLoader workers of CPU
    training; inference_threads, inference_workers: the encoder's torch threads and the
    audio-decoding processes of Inference.py."""
    train_threads: int
    train_workers: int
    inference_threads: int
    inference_workers: int


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask: taskset, a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def choose(bfloat16: bool, cores: int = None) -> CpuDefaults:
    """The defaults for a run in bfloat16 (True) or float32 on `cores` usable cores (this
    process's when None)."""
    cores = max(1, usable_cores() if cores is None else cores)
    if cores <= 2:
        return CpuDefaults(train_threads=cores, train_workers=0, inference_threads=cores, inference_workers=0)
    encoder_threads = max(1, round(cores * (1 / 3 if bfloat16 else 1 / 2)))
    return CpuDefaults(train_threads=cores - 1, train_workers=1,
                       inference_threads=encoder_threads, inference_workers=min(8, cores - encoder_threads))


def set_threads(threads: int) -> int:
    """torch.set_num_threads(threads) unless the user set OMP_NUM_THREADS (a shared machine's
    usual setting, which wins); returns the threads in use."""
    import torch
    if 'OMP_NUM_THREADS' not in os.environ:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def training(num_workers, device_type: str, bfloat16: bool, cores: int = None) -> tuple:
    """(torch threads or None to leave torch's own, DataLoader workers) for Train.py.

    num_workers: Train.Num_Workers, a count or 'auto'. On a CPU, 'auto' takes `choose`'s split;
    a count given (an original YAML's 2) keeps torch on every core beside those workers, as the
    original ran: giving the encoder only the cores the workers left made its step 0.54x the
    seed-style one on 2 Zen 5 cores (docs/train.md). On a GPU, which waits for batches,
    'auto' is a worker for each core but one (at most 8)."""
    cores = max(1, usable_cores() if cores is None else cores)
    if device_type != 'cpu':
        return None, (min(8, max(1, cores - 1)) if num_workers == 'auto' else int(num_workers))
    if num_workers == 'auto':
        defaults = choose(bfloat16, cores)
        return defaults.train_threads, defaults.train_workers
    return cores, int(num_workers)
