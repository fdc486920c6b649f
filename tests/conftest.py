import os
import sys

# One torch/BLAS thread per process: the tests start several processes at once (DataLoader
# workers, scripts as subprocesses), and OpenMP threads that wait for busy cores slow them many times.
os.environ.setdefault('OMP_NUM_THREADS', '1')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import shutil  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope='module')
def random_checkpoint(tmp_path_factory):
    """A randomly initialised encoder in this project's checkpoint layout (step 1000), the
    repository's Hyper_Parameter.yaml beside it."""
    import torch
    from ge2e_speaker.hyper_parameters import load_hyper_parameters
    from ge2e_speaker.modules import Encoder
    folder = tmp_path_factory.mktemp('run')
    torch.manual_seed(0)
    model = Encoder.from_hyper_parameters(load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml')))
    torch.save({'Model': model.state_dict(), 'Steps': 1000, 'Loss': {'w': torch.tensor(10.0), 'b': torch.tensor(-5.0)}},
               folder / 'S_1000.pkl')
    shutil.copy(os.path.join(ROOT, 'Hyper_Parameter.yaml'), folder / 'Hyper_Parameter.yaml')
    return str(folder / 'S_1000.pkl')


@pytest.fixture
def inference_cli(capsys):
    """Inference.py's main in this process: inference_cli(*argv) -> (exit status, stdout, stderr)."""
    from ge2e_speaker import inference

    def run(*argv):
        code = inference.main([str(argument) for argument in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run
