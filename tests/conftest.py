import os
import sys

# One torch/BLAS thread per process: the tests start several processes at once (DataLoader
# workers, scripts as subprocesses), and OpenMP threads that wait for busy cores slow them many times.
os.environ.setdefault('OMP_NUM_THREADS', '1')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
