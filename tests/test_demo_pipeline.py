"""The demo pipeline in miniature: corpus -> patterns -> training -> inference, as Demo.sh runs it."""
import json
import os
import subprocess
import sys

import numpy as np

from ge2e_speaker.hyper_parameters import load_hyper_parameters
from fixtures.settings import save_hyper_parameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def step(*command, cwd):
    environment = dict(os.environ, PYTHONPATH=ROOT)           # for python -m demo_corpus
    result = subprocess.run([sys.executable, *command], cwd=cwd, env=environment, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f'{command}: {result.stdout[-2000:]}\n{result.stderr[-2000:]}'
    return result.stdout


def test_demo_in_miniature(tmp_path):
    hp = load_hyper_parameters(os.path.join(ROOT, 'demo_corpus', 'Hyper_Parameter_Demo.yaml'))
    hp.Encoder.LSTM.Sizes = hp.Encoder.Embedding_Size = 32
    hp.Train.Batch.Train.Speaker, hp.Train.Batch.Train.Pattern_per_Speaker = 4, 3
    hp.Train.Batch.Eval.Speaker, hp.Train.Batch.Eval.Pattern_per_Speaker = 3, 4
    hp.Train.Max_Step, hp.Train.Checkpoint_Save_Interval, hp.Train.Evaluation_Interval = 4, 2, 4
    hp.Train.Initial_Inference = False
    save_hyper_parameters(hp, str(tmp_path / 'hp.yaml'))
    script = lambda name: os.path.join(ROOT, name)   # noqa: E731

    step('-m', 'demo_corpus', '-o', 'Demo/Corpus', '--train-speakers', '4', '--test-speakers', '3',
         '--utterances', '5', '--test-utterances', '4', '--videos', '2', '--trials', '3', '-mw', '1',
         '--accents', 'en,en-us', '--variants', 'none,m3,f2,klatt,whisper,f4,croak', cwd=tmp_path)
    step(script('Pattern_Generate.py'), '-hp', 'hp.yaml', '-vctk', 'Demo/Corpus/VCTK', '-vc1t', 'Demo/Corpus/VC1_Test',
         '-mw', '1', cwd=tmp_path)
    training = step(script('Train.py'), '-hp', 'hp.yaml', cwd=tmp_path)
    assert 'Demo/Checkpoint' in training
    assert hp.Train.Num_Workers == 'auto' and 'loader workers' in training   # cpu_defaults' counts, as Demo.sh runs
    assert os.path.isfile(tmp_path / 'Demo' / 'Checkpoint' / 'S_4.pkl')
    assert os.path.isfile(tmp_path / 'Demo' / 'Log' / 'Figures' / 'S4_multi.png')
    for slices in ('multi', 'single'):
        output = step(script('Inference.py'), '-c', 'Demo/Checkpoint/S_4.pkl', '-hp', 'hp.yaml', '--slices', slices,
                      '-i', 'Demo/Corpus/VC1_Test/wav', '--trials', 'Demo/Corpus/VC1_Test/trials.txt',
                      '--root', 'Demo/Corpus/VC1_Test/wav', '-o', f'Demo/Inference/{slices}', cwd=tmp_path)
        assert 'EER' in output
        folder = tmp_path / 'Demo' / 'Inference' / slices
        verification = json.loads((folder / 'verification.json').read_text())
        assert verification['trials_scored'] == 3 * 3 * 2 and 0 <= verification['eer_percent'] <= 100
        embeddings = np.load(folder / 'embeddings.npy')
        assert embeddings.shape == (12, 32)
        np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
        assert (folder / 'tsne.png').stat().st_size > 10_000


def test_demo_fine_tunes_the_shipped_encoder():
    """Demo.sh starts from the shipped example encoder (Train.py --init): it is there, and its
    weights fit the demo's settings, so the demo's first step is a fine-tuning one."""
    import re

    import torch

    from ge2e_speaker.checkpoints import load_for_fine_tuning
    from ge2e_speaker.loss import GE2ELoss
    from ge2e_speaker.modules import Encoder

    with open(os.path.join(ROOT, 'Demo.sh'), encoding='utf-8') as stream:
        init = re.search(r'INIT=\$\{INIT:-([^}]+)\}', stream.read()).group(1)
    hp = load_hyper_parameters(os.path.join(ROOT, 'demo_corpus', 'Hyper_Parameter_Demo.yaml'))
    encoder, loss = Encoder.from_hyper_parameters(hp), GE2ELoss.from_hyper_parameters(hp)
    before = [parameter.clone() for parameter in encoder.parameters()]
    step, origin = load_for_fine_tuning(os.path.join(ROOT, init), encoder, loss, hp)
    assert step > 0 and 'from it' in origin
    assert all(not torch.equal(old, new) for old, new in zip(before, encoder.parameters()))
    assert hp.Train.Frame_Length.Min >= hp.Sound.Min_Frames and not hp.Train.Initial_Inference
