"""The seed's mel recipe written with librosa, as the seed computed it (SPEC section 1).

Used as the seed-equivalent generator in benchmarks/pattern_generate.py and as the independent
reference that tests/test_audio.py checks Audio.py against.
"""
import librosa
import numpy as np
from scipy import signal as scipy_signal


def seed_mel(path: str, top_db: float, sample_rate: int = 16000, spectrogram_dim: int = 1025,
             frame_length: int = 1024, frame_shift: int = 256, mel_dim: int = 80,
             max_abs_mel: float = 4.0) -> np.ndarray:
    """Audio file -> [frames, mel_dim], the seed's way: librosa.load, lfilter, trim, stft."""
    audio = librosa.load(path, sr=sample_rate)[0]
    audio = scipy_signal.lfilter([1, -0.97], [1], audio)
    audio = librosa.effects.trim(audio, top_db=top_db, frame_length=32, hop_length=16)[0] * 0.99
    emphasised = scipy_signal.lfilter([1, -0.97], [1], audio)
    n_fft = (spectrogram_dim - 1) * 2
    stft = librosa.stft(y=emphasised, n_fft=n_fft, hop_length=frame_shift, win_length=frame_length,
                        pad_mode='reflect')
    mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=mel_dim) @ np.abs(stft)
    decibels = 20 * np.log10(np.maximum(1e-5, mel))
    normalised = np.clip((2 * max_abs_mel) * ((decibels + 100) / 100) - max_abs_mel, -max_abs_mel, max_abs_mel)
    return normalised.T.astype(np.float32)
