"""benchmarks/gpu_check.sh: its CPU path end to end, and a clear stop where CUDA is missing."""
import os
import subprocess
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cpu_path_prints_and_writes_the_table(tmp_path):
    result = subprocess.run(['bash', os.path.join(ROOT, 'benchmarks', 'gpu_check.sh'), '--device', 'cpu', '--quick'],
                            capture_output=True, text=True, env=dict(os.environ, OUT=str(tmp_path)), timeout=120)
    assert result.returncode == 0, result.stderr
    table = (tmp_path / 'gpu_check.txt').read_text()
    assert table.strip() in result.stdout
    lines = table.splitlines()
    assert lines[0].startswith(f'gpu_check (quick): torch {torch.__version__}') and 'device cpu' in lines[0]
    rows = [line.split() for line in lines if line.endswith('%')]
    assert len(rows) == 4 and all(float(row[-2]) > 0 for row in rows)
    assert sum('packed store' in line for line in lines if line.endswith('%')) == 2
    bounds = [line for line in lines if line.endswith(('batches/s', 'steps/s'))]
    assert len(bounds) == 4 and all(float(line.split()[-2]) > 0 for line in bounds)
    assert sum(line.strip().startswith('loader alone, 0 workers') for line in bounds) == 2
    assert any(line.startswith('inference: ') and 'utterances/s (6 files' in line for line in lines)
    assert lines[-1] == 'command: bash benchmarks/gpu_check.sh --device cpu --quick'


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has CUDA')
def test_without_cuda_it_says_what_to_do():
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'benchmarks', 'gpu_check.py'), '--device', 'cuda'],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and 'sees no CUDA device' in result.stderr
