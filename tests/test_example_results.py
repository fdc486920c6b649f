"""Example_Results holds what the README says: a loadable checkpoint, its settings, the figures."""
import os

import numpy as np
import torch

from fixtures import corpora
from Inference import load_encoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKPOINT = os.path.join(ROOT, 'Example_Results', 'Synthetic', 'Checkpoint', 'S_2500.pkl')


def test_example_checkpoint_embeds_and_tells_voices_apart():
    state = torch.load(CHECKPOINT, weights_only=True)
    assert set(state) == {'Model', 'Steps', 'Loss'} and state['Steps'] == 2500
    encoder = load_encoder(CHECKPOINT, workers=0)   # settings from the Hyper_Parameter.yaml beside it
    same = [encoder.embed_waveform(corpora.voice(1, utterance, seconds=2.5), 16000) for utterance in (1, 2)]
    other = encoder.embed_waveform(corpora.voice(6, 1, seconds=2.5), 16000)
    for vector in (*same, other):
        assert vector.shape == (256,) and vector.dtype == np.float32
        assert abs(np.linalg.norm(vector) - 1) < 1e-5
    assert float(same[0] @ same[1]) > float(same[0] @ other)


def test_example_figures_exist():
    for name in ('S2500_single.png', 'S2500_multi.png', 'S2500_held_out_40_multi.png', 'S2500_demo_held_out_multi.png'):
        assert os.path.getsize(os.path.join(ROOT, 'Example_Results', 'Synthetic', 'Figures', name)) > 20_000
