"""Whole-process rates in steady state, shared by benchmarks/inference.py and
benchmarks/pattern_generate.py (their --sizes mode).

Each system runs as a whole process (start-up, imports, model loading and writing included) on
two corpus sizes n1 < n2 of the same files; its steady-state rate is (n2 - n1) / (t2 - t1), so
the start-up cost, paid once in either run, drops out. A round runs every system on both sizes,
the systems in turn (who goes first alternates from round to round), so that a busy spell of a
shared machine hits all of them alike; the ratio to the reference is taken within each round and
the median of the rounds' ratios is the figure reported, beside every round's.
"""
import os
import platform
import resource
import subprocess
import time

import numpy as np


# The environment that makes PyTorch, oneDNN and MKL take their AVX2 code paths on any x86 CPU:
# how an AVX-512 machine stands in for the pool's AVX2-only ones.
FORCED_AVX2 = {'ATEN_CPU_CAPABILITY': 'avx2', 'ONEDNN_MAX_CPU_ISA': 'AVX2', 'MKL_ENABLE_INSTRUCTIONS': 'AVX2'}


def torch_capability(environment: dict = None) -> str:
    """The vectorised kernels torch uses in a process with this environment ('AVX512', 'AVX2', ...)."""
    import subprocess
    import sys
    return subprocess.run([sys.executable, '-c', 'import torch; print(torch.backends.cpu.get_cpu_capability())'],
                          capture_output=True, text=True, env=environment).stdout.strip() or 'unknown'


def cpu_description(environment: dict = None) -> str:
    """'AMD EPYC 9R45 (AVX512-BF16), 2 usable cores, torch kernels AVX512': the model name, the
    bfloat16 and AMX instructions the benchmarks' precision depends on, the cores this process may
    use, and the kernels torch takes in a process with `environment` (this one's when None)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as stream:
            for line in stream:
                key, _, value = line.partition(':')
                if key.strip() == 'model name':
                    model = value.strip()
                elif key.strip() == 'flags':
                    flags = set(value.split())
    except OSError:
        pass
    features = [name for flag, name in (('avx512_bf16', 'AVX512-BF16'), ('amx_bf16', 'AMX'), ('avx512f', 'AVX-512'))
                if flag in flags]
    if 'AVX512-BF16' in features or 'AMX' in features:
        features = [name for name in features if name != 'AVX-512']
    features = features or (['AVX2, no AVX-512'] if 'avx2' in flags else [])
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return (f'{model} ({", ".join(features) or "no AVX2"}), {cores} usable cores, '
            f'torch kernels {torch_capability(environment)}')


def timed_process(command: list, cwd: str = None, env: dict = None) -> tuple:
    """(wall seconds, CPU seconds of the process and the children it waited for) of a whole run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             check=False)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f'{" ".join(command)} failed: {process.stderr.strip()[-2000:]}')
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return seconds, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def run_rounds(systems: dict, sizes: list, rounds: int, reference: str, unit: str) -> dict:
    """systems: name -> run(size) -> (wall seconds, CPU seconds), a whole process on the first
    `size` files. Runs `rounds` rounds, prints each round's whole-run times, steady-state rates
    and ratios to `reference`; returns {name: [rate per round]} and the CPU ms per file."""
    small, large = sorted(sizes)
    rates = {name: [] for name in systems}
    cpu_ms = {name: [] for name in systems}
    for number in range(rounds):
        order = list(systems) if number % 2 == 0 else list(systems)[::-1]
        seconds = {}
        for name in order:
            seconds[name] = {size: systems[name](size) for size in ((small, large) if number % 2 == 0 else (large, small))}
        parts = []
        for name in systems:
            (t_small, c_small), (t_large, c_large) = seconds[name][small], seconds[name][large]
            rate = (large - small) / (t_large - t_small) if t_large > t_small else float('nan')
            rates[name].append(rate)
            cpu_ms[name].append(1000 * (c_large - c_small) / (large - small))
            parts.append(f'{name}: {t_small:.1f} s / {t_large:.1f} s -> {rate:.1f} {unit}')
        ratios = [f'{name} {rates[name][-1] / rates[reference][-1]:.2f}x' for name in systems if name != reference]
        print(f'  round {number + 1}: ' + '; '.join(parts) + ' | ' + ', '.join(ratios), flush=True)
    return rates, cpu_ms


def report(rates: dict, cpu_ms: dict, reference: str, unit: str, target: float = 3.0) -> None:
    """The median rate and CPU time per file of each system, and its ratio to the reference:
    every round's, the median, and whether the target held in every round."""
    for name, values in rates.items():
        line = f'{name}: median {np.median(values):.1f} {unit} (rounds {", ".join(f"{v:.1f}" for v in values)}), ' \
               f'{np.median(cpu_ms[name]):.1f} CPU ms per file'
        if name != reference:
            ratios = [ours / theirs for ours, theirs in zip(values, rates[reference])]
            held = 'held in every round' if min(ratios) >= target else f'NOT held in {sum(r < target for r in ratios)} of {len(ratios)} rounds'
            line += (f'; {np.median(ratios):.2f}x {reference} (median; rounds {", ".join(f"{r:.2f}x" for r in ratios)}); '
                     f'target {target:g}x {held}')
        print(line)
