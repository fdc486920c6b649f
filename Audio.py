"""The mel recipe: one place for audio -> normalised log-mel "pattern" [frames, Mel_Dim].

Numerically the seed's recipe (librosa 0.7 era, SPEC section 1), computed without librosa's
per-call overhead so that pattern generation, training and inference share one fast path:

    load mono, resample to Sample_Rate (soxr HQ, librosa's default)
    pre-emphasis 0.97 -> trim silence (frame 32, hop 16, top_db) -> x 0.99
    pre-emphasis 0.97 again -> |STFT| (n_fft 2048, Hann 1024, hop 256, centred, reflect pad)
    -> Slaney mel 80 x 0-8 kHz -> 20 log10(max(1e-5, .)) -> clip(8 (dB + 100) / 100 - 4, -4, 4)
"""
import functools
import io
import shutil
import subprocess

import numpy as np
import scipy.fft
import soundfile
import soxr

PREEMPHASIS = 0.97
TRIM_FRAME_LENGTH = 32
TRIM_HOP_LENGTH = 16
TRIM_GAIN = 0.99
MIN_LEVEL_DB = -100.0
AMPLITUDE_FLOOR = 1e-5
FFMPEG_EXTENSIONS = ('.m4a', '.aac', '.mp4')   # compressed audio that only ffmpeg decodes here


class AudioRejected(Exception):
    """A file that cannot become a pattern; str(error) is the reason shown to the user."""


class FFmpegMissing(AudioRejected):
    """A compressed file (.m4a) needs ffmpeg, which is not on PATH."""


def require_finite(values: np.ndarray) -> None:
    """Raise AudioRejected when values hold NaN or infinity: such audio gives a pattern of NaN."""
    if not np.isfinite(values).all():
        raise AudioRejected('non-finite samples: the audio holds NaN or infinite values')


def _decode_with_ffmpeg(path: str) -> tuple[np.ndarray, int]:
    if shutil.which('ffmpeg') is None:
        raise FFmpegMissing('ffmpeg is not installed; it is needed to decode .m4a (apt-get install ffmpeg)')
    process = subprocess.run(
        ['ffmpeg', '-v', 'error', '-nostdin', '-i', path, '-f', 'wav', '-acodec', 'pcm_f32le', 'pipe:1'],
        capture_output=True, check=False)
    if process.returncode != 0 or not process.stdout:
        message = process.stderr.decode(errors='replace').strip().splitlines()
        raise AudioRejected(f'unreadable: ffmpeg: {message[-1] if message else "no audio decoded"}')
    # A piped wav carries placeholder sizes; reading it as a stream ignores them.
    with soundfile.SoundFile(io.BytesIO(process.stdout)) as stream:
        return stream.read(dtype='float32', always_2d=True), stream.samplerate


def read_audio(path: str) -> tuple[np.ndarray, int]:
    """Samples of any channel count, bit depth or rate -> (mono float32 [samples], native rate)."""
    if path.lower().endswith(FFMPEG_EXTENSIONS):
        samples, rate = _decode_with_ffmpeg(path)
    else:
        try:
            samples, rate = soundfile.read(path, dtype='float32', always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            raise AudioRejected(f'unreadable: {error}') from None
    if samples.shape[0] == 0:
        raise AudioRejected('empty: no samples')
    require_finite(samples)
    return samples.mean(axis=1, dtype=np.float32), rate   # librosa's to_mono: channel mean


def load_audio(path: str, sample_rate: int) -> np.ndarray:
    """Mono float32 samples at sample_rate, resampled as librosa.load does (soxr HQ)."""
    samples, rate = read_audio(path)
    return resample(samples, rate, sample_rate)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate:
        return samples
    return soxr.resample(samples, from_rate, to_rate, quality='HQ').astype(np.float32, copy=False)


def preemphasis(signal: np.ndarray, coefficient: float = PREEMPHASIS) -> np.ndarray:
    """y[n] = x[n] - c x[n-1], y[0] = x[0] (scipy.signal.lfilter([1, -c], [1], x))."""
    emphasised = np.empty(signal.shape, dtype=np.float64)
    emphasised[0] = signal[0]
    np.subtract(signal[1:], coefficient * signal[:-1].astype(np.float64), out=emphasised[1:])
    return emphasised


def trim_silence(signal: np.ndarray, top_db: float,
                 frame_length: int = TRIM_FRAME_LENGTH, hop_length: int = TRIM_HOP_LENGTH) -> np.ndarray:
    """Leading and trailing silence removed, as librosa.effects.trim(signal, top_db, ...) does.

    Frames are centred (zero padding of frame_length // 2); a frame is sound when its RMS is
    within top_db of the loudest frame's. Returns an empty array when nothing is; raises
    AudioRejected when a frame is not finite (NaN would otherwise pass for sound or silence).
    """
    padded = np.pad(signal, frame_length // 2)
    frame_count = 1 + (len(padded) - frame_length) // hop_length
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame_length)[::hop_length][:frame_count]
    mean_square = np.mean(np.abs(frames) ** 2, axis=1)                     # [frames]
    require_finite(mean_square)
    power_db = 10.0 * np.log10(np.maximum(AMPLITUDE_FLOOR ** 2, mean_square))
    reference_db = 10.0 * np.log10(max(AMPLITUDE_FLOOR ** 2, float(mean_square.max(initial=0.0))))
    sound = np.flatnonzero(power_db - reference_db > -top_db)
    if sound.size == 0:
        return signal[:0]
    start = sound[0] * hop_length
    end = min(len(signal), (sound[-1] + 1) * hop_length)
    return signal[start:end]


def _hz_to_mel(frequencies: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    frequencies = np.asarray(frequencies, dtype=np.float64)
    linear = frequencies / (200.0 / 3)
    logarithmic = 15.0 + np.log(np.maximum(frequencies, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(frequencies >= 1000.0, logarithmic, linear)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    linear = mels * (200.0 / 3)
    logarithmic = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mels - 15.0))
    return np.where(mels >= 15.0, logarithmic, linear)


@functools.lru_cache(maxsize=8)
def mel_basis(sample_rate: int, n_fft: int, mel_dim: int) -> np.ndarray:
    """Slaney-normalised mel filterbank [mel_dim, n_fft // 2 + 1], 0 Hz to sample_rate / 2:
    librosa.filters.mel's default, computed here so that workers need not import librosa."""
    bin_frequencies = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), mel_dim + 2))   # [mel_dim + 2]
    ramps = edges[:, None] - bin_frequencies[None, :]
    rising = -ramps[:-2] / np.diff(edges)[:-1, None]
    falling = ramps[2:] / np.diff(edges)[1:, None]
    weights = np.maximum(0, np.minimum(rising, falling)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=8)
def _window(n_fft: int, win_length: int) -> np.ndarray:
    """Periodic Hann of win_length, zero-padded to n_fft at the centre (librosa's pad_center)."""
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(win_length) / win_length)
    window = np.zeros(n_fft)
    offset = (n_fft - win_length) // 2
    window[offset:offset + win_length] = hann
    return window


def magnitude_spectrogram(signal: np.ndarray, n_fft: int, win_length: int, hop_length: int) -> np.ndarray:
    """|STFT| [frames, n_fft // 2 + 1], centred frames, reflect padding (librosa 0.7's stft)."""
    padded = np.pad(signal, n_fft // 2, mode='reflect' if len(signal) > n_fft // 2 else 'constant')
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]   # [frames, n_fft]
    offset = (n_fft - win_length) // 2
    window = _window(n_fft, win_length)[offset:offset + win_length].astype(np.float32)
    # Only the window's non-zero middle contributes; rfft zero-pads it back to n_fft, which
    # shifts the phase only, so the magnitude equals the full frame's.
    windowed = frames[:, offset:offset + win_length].astype(np.float32) * window
    return np.abs(scipy.fft.rfft(windowed, n=n_fft, axis=1))


def normalised_log_mel(magnitude: np.ndarray, sound_hp) -> np.ndarray:
    """|STFT| [frames, bins] -> mel in [-Max_Abs_Mel, Max_Abs_Mel], float32 [frames, Mel_Dim]."""
    n_fft = (sound_hp.Spectrogram_Dim - 1) * 2
    mel = magnitude @ mel_basis(sound_hp.Sample_Rate, n_fft, sound_hp.Mel_Dim).T   # [frames, mel]
    decibels = 20.0 * np.log10(np.maximum(AMPLITUDE_FLOOR, mel))
    max_abs = sound_hp.Max_Abs_Mel
    normalised = 2.0 * max_abs * (decibels - MIN_LEVEL_DB) / -MIN_LEVEL_DB - max_abs
    return np.clip(normalised, -max_abs, max_abs).astype(np.float32)


def mel_from_signal(signal: np.ndarray, sound_hp, top_db: float, min_frames: int = 1) -> np.ndarray:
    """The whole recipe after loading: mono samples at Sample_Rate -> pattern [frames, Mel_Dim].

    Raises AudioRejected for silence and for fewer than min_frames frames.
    """
    if not np.any(signal):
        raise AudioRejected('silent: every sample is zero')
    trimmed = trim_silence(preemphasis(signal), top_db) * TRIM_GAIN
    if trimmed.size == 0 or not np.any(trimmed):
        raise AudioRejected('silent: nothing above the trim threshold')
    magnitude = magnitude_spectrogram(
        preemphasis(trimmed), (sound_hp.Spectrogram_Dim - 1) * 2, sound_hp.Frame_Length, sound_hp.Frame_Shift)
    mel = normalised_log_mel(magnitude, sound_hp)
    if mel.shape[0] < min_frames:
        raise AudioRejected(f'too short: {mel.shape[0]} frames after trimming, fewer than Sound.Min_Frames ({min_frames})')
    return mel


def mel_from_file(path: str, sound_hp, top_db: float, min_frames: int = 1) -> np.ndarray:
    """Audio file -> pattern [frames, Mel_Dim]; AudioRejected says why a file cannot be one."""
    return mel_from_signal(load_audio(path, sound_hp.Sample_Rate), sound_hp, top_db, min_frames)
