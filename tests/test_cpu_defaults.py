"""cpu_defaults: the thread and worker counts Train.py and Inference.py take by default."""
import os

import pytest

from ge2e_speaker import cpu_defaults, runtime
from ge2e_speaker.cpu_defaults import CpuDefaults, choose, training


@pytest.mark.parametrize('bfloat16', [False, True])
def test_two_cores_or_fewer_run_the_encoder_on_every_core_and_no_other_process(bfloat16):
    # Measured on 2 cores: a worker beside two torch threads stalls them; two threads beat one.
    assert choose(bfloat16, cores=2) == CpuDefaults(train_threads=2, train_workers=0, inference_threads=2, inference_workers=0)
    assert choose(bfloat16, cores=1) == CpuDefaults(train_threads=1, train_workers=0, inference_threads=1, inference_workers=0)


@pytest.mark.parametrize('cores, bfloat16, inference', [
    (4, False, (2, 2)), (4, True, (1, 3)), (8, False, (4, 4)), (8, True, (3, 5)), (32, False, (16, 8)), (32, True, (11, 8))])
def test_more_cores_share_inference_between_encoder_and_decoders_by_precision(cores, bfloat16, inference):
    defaults = choose(bfloat16, cores)
    assert (defaults.inference_threads, defaults.inference_workers) == inference
    assert (defaults.train_threads, defaults.train_workers) == (cores - 1, 1)
    assert defaults.inference_threads + defaults.inference_workers <= cores


def test_training_counts_from_num_workers():
    assert training('auto', 'cpu', False, cores=2) == (2, 0)
    assert training('auto', 'cpu', True, cores=8) == (7, 1)
    assert training(1, 'cpu', False, cores=2) == (2, 1)        # a count given: torch keeps every core, as the original
    assert training(3, 'cpu', True, cores=2) == (2, 3)
    assert training('auto', 'cuda', False, cores=16) == (None, 8)   # GPU: torch's threads, many loader workers
    assert training('auto', 'cuda', False, cores=2) == (None, 1)
    assert training(2, 'cuda', False, cores=16) == (None, 2)


def test_bfloat16_detection_reads_the_cpu_flags(tmp_path):
    for flags, expected in (('fpu avx2 fma', False), ('avx2 avx512f avx512_bf16', True), ('amx_bf16 amx_tile', True)):
        cpuinfo = tmp_path / 'cpuinfo'
        cpuinfo.write_text(f'processor\t: 0\nflags\t\t: {flags}\n')
        assert runtime.cpu_has_bfloat16(str(cpuinfo)) is expected
    assert runtime.cpu_has_bfloat16(str(tmp_path / 'absent')) is False


def test_user_threads_win(monkeypatch):
    import torch
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv('OMP_NUM_THREADS', '1')
        torch.set_num_threads(1)
        assert cpu_defaults.set_threads(2) == 1
        monkeypatch.delenv('OMP_NUM_THREADS')
        assert cpu_defaults.set_threads(2) == 2
    finally:
        torch.set_num_threads(before)


def test_the_avx2_stand_in_makes_torch_take_its_avx2_kernels():
    """benchmarks' FORCED_AVX2 environment (README: how any x86 machine stands in for the pool's
    AVX2-only CPUs) does switch torch's vectorised kernels: checked in a child process."""
    import subprocess
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'benchmarks'))
    from steady_state import FORCED_AVX2, torch_capability
    with open('/proc/cpuinfo', encoding='utf-8') as stream:
        if ' avx2' not in stream.read():
            pytest.skip('this CPU has no AVX2')
    assert torch_capability(dict(os.environ, **FORCED_AVX2)) == 'AVX2'
    native = subprocess.run([sys.executable, '-c', 'import torch; print(torch.backends.cpu.get_cpu_capability())'],
                            capture_output=True, text=True).stdout.strip()
    assert torch_capability(dict(os.environ)) == native


def test_importing_the_package_shortens_openmp_spins_before_torch_loads_unless_the_user_chose():
    """Beside a busy core libgomp's default 300,000 spins made two torch threads 6-10 times
    slower (docs/train.md); the package sets GOMP_SPINCOUNT before torch loads, a user's value wins."""
    import subprocess
    import sys
    probe = ("import sys, os, ge2e_speaker; "
             "print(os.environ['GOMP_SPINCOUNT'], 'torch' in sys.modules)")
    environment = {key: value for key, value in os.environ.items() if key != 'GOMP_SPINCOUNT'}
    output = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, env=environment).stdout.split()
    assert output == [cpu_defaults.OPENMP_SPIN_COUNT, 'True'] and cpu_defaults.OPENMP_SPIN_COUNT == '1000'
    output = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                            env=dict(environment, GOMP_SPINCOUNT='50')).stdout.split()
    assert output == ['50', 'True']
    package_source = open(cpu_defaults.__file__.replace('cpu_defaults.py', '__init__.py'), encoding='utf-8').read()
    assert package_source.index('prefer_short_openmp_spins()') < package_source.index('from .embedding')
