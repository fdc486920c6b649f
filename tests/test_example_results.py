"""Example_Results holds what the README says: the real-voices encoder (one checkpoint, its
settings, its figure; the package ships it) and the synthetic example, each loadable and telling
voices apart."""
import glob
import os

import numpy as np
import torch

from fixtures import corpora
from ge2e_speaker import EXAMPLE_CHECKPOINT, load_encoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNTHETIC = os.path.join(ROOT, 'Example_Results', 'Synthetic', 'Checkpoint', 'S_2500.pkl')
REAL_VOICES = os.path.join(ROOT, 'tests', 'data', 'real_voices')


def real_checkpoint() -> str:
    checkpoints = glob.glob(os.path.join(ROOT, 'Example_Results', 'Checkpoint', 'S_*.pkl'))
    assert len(checkpoints) == 1, checkpoints          # the folder holds only the real-voices encoder
    # the package's example encoder, which load_encoder() loads without a checkpoint
    assert os.path.realpath(checkpoints[0]) == os.path.realpath(EXAMPLE_CHECKPOINT)
    return checkpoints[0]


def test_real_voices_checkpoint_is_small_safe_and_carries_its_settings():
    path = real_checkpoint()
    assert os.path.getsize(path) < 20e6
    state = torch.load(path, weights_only=True)
    assert set(state) == {'Model', 'Steps', 'Loss', 'Hyper_Parameters'}
    assert f"S_{state['Steps']}.pkl" == os.path.basename(path)
    assert state['Hyper_Parameters']['Encoder']['LSTM'] == {'Sizes': 256, 'Stacks': 3}
    assert os.path.isfile(os.path.join(os.path.dirname(path), 'Hyper_Parameter.yaml'))
    figure = os.path.join(ROOT, 'Example_Results', 'Figures', f"S{state['Steps']}_real_held_out_tsne.png")
    assert os.path.getsize(figure) > 20_000


def test_real_voices_checkpoint_tells_held_out_real_speakers_apart():
    """Three speakers the recipe held out (speechocean762's train half): every same-speaker pair
    scores above every pair of two speakers."""
    encoder = load_encoder(real_checkpoint(), workers=0, device='cpu')
    files = sorted(glob.glob(os.path.join(REAL_VOICES, '*', '*.flac')))
    speakers = [os.path.basename(os.path.dirname(path)) for path in files]
    vectors = np.stack([encoder.embed_file(path) for path in files])     # [6, 256]
    assert vectors.shape == (6, 256) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    scores = vectors @ vectors.T
    same = [scores[i, j] for i in range(6) for j in range(i + 1, 6) if speakers[i] == speakers[j]]
    different = [scores[i, j] for i in range(6) for j in range(i + 1, 6) if speakers[i] != speakers[j]]
    assert len(same) == 3 and min(same) > max(different)


def test_synthetic_checkpoint_embeds_and_tells_voices_apart():
    state = torch.load(SYNTHETIC, weights_only=True)
    assert set(state) == {'Model', 'Steps', 'Loss'} and state['Steps'] == 2500
    encoder = load_encoder(SYNTHETIC, workers=0)   # settings from the Hyper_Parameter.yaml beside it
    same = [encoder.embed_waveform(corpora.voice(1, utterance, seconds=2.5), 16000) for utterance in (1, 2)]
    other = encoder.embed_waveform(corpora.voice(6, 1, seconds=2.5), 16000)
    for vector in (*same, other):
        assert vector.shape == (256,) and vector.dtype == np.float32
        assert abs(np.linalg.norm(vector) - 1) < 1e-5
    assert float(same[0] @ same[1]) > float(same[0] @ other)


def test_synthetic_figures_exist():
    for name in ('S2500_single.png', 'S2500_multi.png', 'S2500_held_out_40_multi.png', 'S2500_demo_held_out_multi.png'):
        assert os.path.getsize(os.path.join(ROOT, 'Example_Results', 'Synthetic', 'Figures', name)) > 20_000
