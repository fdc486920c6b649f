"""The demo corpus's audio: an utterance synthesised by eSpeak NG, then "recorded": channel
colour, loudness, silence around it and coloured noise, resampled to its file's rate."""
import io
import os

import numpy as np
import soundfile
import soxr
from scipy.signal import lfilter

from ge2e_speaker.atomic_files import write_atomically
from demo_corpus import speech_synth
from demo_corpus.planning import Utterance


def _coloured_noise(rng: np.random.Generator, length: int, colour: float) -> np.ndarray:
    noise = lfilter([1.0], [1.0, -colour], rng.standard_normal(length))
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def render(utterance: Utterance) -> np.ndarray:
    """Synthesise and record one utterance: float32 samples at utterance.sample_rate."""
    speech, rate = speech_synth.synthesize(utterance.text, utterance.speaker.voice, utterance.rate, utterance.pitch,
                                           utterance.pitch_range, word_gap=utterance.word_gap, seed=utterance.seed)
    if speech.size < rate // 2 or np.sqrt(np.mean(speech.astype(np.float64) ** 2)) < 1e-3:
        raise speech_synth.SynthesisError(f'{utterance.speaker.voice} gave (nearly) silent audio for {utterance.path}')
    condition = utterance.condition
    speech = lfilter([1.0, condition.channel_tilt], [1.0], speech.astype(np.float64))
    speech *= 10 ** (condition.loudness_dbfs / 20) / np.sqrt(np.mean(speech ** 2))
    speech = np.concatenate([np.zeros(int(utterance.silence_before * rate)), speech,
                             np.zeros(int(utterance.silence_after * rate))])
    noise_rms = 10 ** ((condition.loudness_dbfs - condition.snr_db) / 20)
    rng = np.random.default_rng(utterance.seed)
    recorded = speech + noise_rms * _coloured_noise(rng, speech.size, condition.noise_colour)
    recorded *= min(1.0, 0.98 / np.abs(recorded).max())   # never clip
    return soxr.resample(recorded, rate, utterance.sample_rate, quality='HQ').astype(np.float32)


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """A 16-bit PCM wav file's bytes."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, subtype='PCM_16', format='WAV')
    return buffer.getvalue()


def make_file(job: tuple) -> str:
    """Worker: render one utterance and write it (and, for VCTK, its transcript)."""
    root, utterance = job
    write_atomically(os.path.join(root, utterance.path), wav_bytes(render(utterance), utterance.sample_rate))
    if utterance.path.startswith('VCTK/wav48/'):
        transcript = utterance.path.replace('VCTK/wav48/', 'VCTK/txt/', 1)[:-len('.wav')] + '.txt'
        write_atomically(os.path.join(root, transcript), (utterance.text + '\n').encode())
    return utterance.path
