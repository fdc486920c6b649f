"""Embeddings over time: embed_utterance(return_partials=True) and the streaming form."""
import glob
import os

import numpy as np
import pytest
import soundfile

from fixtures import corpora
from ge2e_speaker import load_encoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_VOICES = sorted(glob.glob(os.path.join(ROOT, 'tests', 'data', 'real_voices', '*', '*.flac')))


@pytest.fixture(scope='module')
def encoder():
    return load_encoder(device='cpu', workers=0)


def two_voices(rate: int) -> np.ndarray:
    return np.concatenate([corpora.voice(1, 0, seconds=2.5, rate=rate), corpora.voice(4, 1, seconds=2.5, rate=rate)])


@pytest.mark.parametrize('rate', [16000, 44100])
def test_partials_cover_the_signal_and_average_to_the_embedding(encoder, rate):
    wav = two_voices(rate)
    embedding, partials, spans = encoder.embed_utterance(wav, rate, return_partials=True)
    assert partials.shape == (len(spans), 256) and len(spans) > 5
    assert np.allclose(np.linalg.norm(partials, axis=1), 1, atol=1e-5)
    mean = partials.mean(axis=0)
    np.testing.assert_allclose(embedding, mean / np.linalg.norm(mean), atol=1e-6)
    assert spans[0].start == 0 and spans[-1].stop == len(wav)
    assert all(0 <= span.start < span.stop <= len(wav) for span in spans)
    assert all(later.start <= earlier.stop for earlier, later in zip(spans, spans[1:]))   # no gap
    # 64-frame windows every 32 frames of 256 samples at 16 kHz: 1.024 s long, 0.512 s apart
    assert spans[1].start == round(32 * 256 * rate / 16000)
    assert spans[1].stop - spans[1].start == pytest.approx(64 * 256 * rate / 16000, abs=1)


def test_a_short_utterance_is_one_partial_over_all_of_it(encoder):
    wav = corpora.voice(2, 0, seconds=0.3)
    _, partials, spans = encoder.embed_utterance(wav, 16000, return_partials=True)
    assert partials.shape == (1, 256) and spans == [slice(0, len(wav))]


@pytest.mark.parametrize('rate, chunk', [(16000, 1000), (22050, 4410), (16000, 50000)])
def test_the_stream_equals_the_partials(encoder, rate, chunk):
    wav = two_voices(rate)
    _, partials, spans = encoder.embed_utterance(wav, rate, return_partials=True)
    stream = encoder.stream(rate)
    pieces, streamed_spans = [], []
    for start in range(0, len(wav), chunk):
        new, new_spans = stream.push(wav[start:start + chunk])
        pieces.append(new)
        streamed_spans += new_spans
    early = sum(len(piece) for piece in pieces)
    new, new_spans = stream.close()
    streamed = np.concatenate(pieces + [new])
    assert streamed_spans + new_spans == spans
    np.testing.assert_allclose(streamed, partials, atol=1e-5)
    if chunk < len(wav) // 4:
        assert early >= len(partials) - 4   # partials come while the signal grows, not only at the end


def test_partials_follow_who_speaks(encoder):
    """Two held-out real speakers one after the other: the first partials are nearer the first
    speaker's embedding, the last ones nearer the second's."""
    first, second = [path for path in REAL_VOICES if os.path.basename(os.path.dirname(path)) != os.path.basename(
        os.path.dirname(REAL_VOICES[0]))][:1] + REAL_VOICES[:1]
    (a, rate), (b, rate_b) = soundfile.read(first, dtype='float32'), soundfile.read(second, dtype='float32')
    assert rate == rate_b
    speakers = np.stack([encoder.embed_file(first), encoder.embed_file(second)])
    _, partials, spans = encoder.embed_utterance(np.concatenate([a, b]), rate, return_partials=True)
    similarity = partials @ speakers.T                                   # [k, 2]
    inside_a = [i for i, span in enumerate(spans) if span.stop <= len(a)]
    inside_b = [i for i, span in enumerate(spans) if span.start >= len(a)]
    assert inside_a and inside_b
    assert np.all(similarity[inside_a, 0] > similarity[inside_a, 1])
    assert np.all(similarity[inside_b, 1] > similarity[inside_b, 0])
