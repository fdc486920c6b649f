"""The mel recipe: one place for audio -> normalised log-mel "pattern" [frames, Mel_Dim].

Numerically the seed's recipe (librosa 0.7 era, SPEC section 1), computed without librosa's
per-call overhead so that pattern generation, training and inference share one fast path:

    load mono, resample to Sample_Rate (soxr HQ, librosa's default)
    pre-emphasis 0.97 -> trim silence (frame 32, hop 16, top_db) -> x 0.99
    pre-emphasis 0.97 again -> |STFT| (n_fft 2048, Hann 1024, hop 256, centred, reflect pad)
    -> Slaney mel 80 x 0-8 kHz -> 20 log10(max(1e-5, .)) -> clip(8 (dB + 100) / 100 - 4, -4, 4)

Every stage runs on blocks of BLOCK_SAMPLES samples (reading, resampling, pre-emphasis, the
trim's frames, the STFT's frames), with the overlap each stage needs, so a long recording costs
about 10 bytes per sample at Sample_Rate (the signal and its emphasised copy in float32, and the
pattern) instead of about 100, and still gives the whole-file result
(`benchmarks/memory_peak.py`: 10 minutes at 48 kHz, 1062 MB -> 162 MB).
"""
import functools
import io
import os
import shutil
import subprocess

import numpy as np
import scipy.fft
import soundfile
import soxr

from . import file_kinds

PREEMPHASIS = 0.97
TRIM_FRAME_LENGTH = 32
TRIM_HOP_LENGTH = 16
TRIM_GAIN = 0.99
MIN_LEVEL_DB = -100.0
AMPLITUDE_FLOOR = 1e-5
FFMPEG_EXTENSIONS = ('.m4a', '.aac', '.mp4')   # compressed audio that only ffmpeg decodes here
# What counts as audio (any case), in order of preference when one recording comes in two formats.
AUDIO_EXTENSIONS = ('.wav', '.flac', '.m4a', '.mp3', '.ogg', '.aac', '.mp4')
BLOCK_SAMPLES = 1 << 17                        # samples per block: bounds the working memory of every stage


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


def shown(path: str) -> str:
    """A path as it can be printed: bytes that are not UTF-8 as \\x escapes."""
    return os.fsencode(path).decode('utf-8', 'backslashreplace')


def audio_files(root: str, log=print) -> list:
    """Every audio file (AUDIO_EXTENSIONS) below root, sorted (os.scandir recursion: cheap at a
    million files).

    Symbolic links are followed, but each folder is walked once: a link back to a folder
    already walked (a loop) gets one line. An unlistable folder gets one line too, and so does a
    folder named like audio (x.wav/). Special files (pipes, devices) are listed: decoding refuses them.
    """
    found, walked = [], {}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            status = os.stat(folder)
            identity = (status.st_dev, status.st_ino)
            if identity in walked:
                log(f'{shown(folder)}: not walked: a symbolic link to {shown(walked[identity])}, '
                    f'which is walked already (a link loop?)')
                continue
            walked[identity] = folder
            with os.scandir(folder) as entries:
                entries = sorted(entries, key=lambda entry: entry.name)
        except OSError as error:
            log(f'{shown(folder)}: cannot be listed ({error.strerror}); its files are left out')
            continue
        folders = [entry for entry in entries if entry.is_dir(follow_symlinks=True)]
        for entry in folders:
            if entry.name.lower().endswith(AUDIO_EXTENSIONS):
                log(f'{shown(entry.path)}: a folder, not an audio file, though its name ends like one: '
                    f'walked as a folder')
        stack.extend(entry.path for entry in reversed(folders))
        found.extend(entry.path for entry in entries
                     if not entry.is_dir(follow_symlinks=True) and entry.name.lower().endswith(AUDIO_EXTENSIONS))
    return sorted(found)


@functools.cache
def _threadpools():
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


def one_blas_thread():
    """Limits numpy's BLAS to one thread, until exit when used as a context, else for good: the
    mel's small matrix product is many times slower with two threads fighting over two busy cores."""
    return _threadpools().limit(limits=1, user_api='blas')


def _file_blocks(stream: soundfile.SoundFile, first: int, stop: int):
    """float32 [samples, channels] blocks of samples [first, stop) of an open file, closed at the end."""
    with stream:
        try:
            stream.seek(first)
            for index in range(first, stop, BLOCK_SAMPLES):
                block = stream.read(min(BLOCK_SAMPLES, stop - index), dtype='float32', always_2d=True)
                if not len(block):
                    return
                yield block
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            raise AudioRejected(f'unreadable: {error}') from None


def _segment(rate: int, start: float, end: float, length: int) -> tuple:
    """Sample indices [first, stop) of the segment start-end (seconds; the whole recording when
    start is None) of a recording of length samples."""
    if start is None:
        return 0, length
    return min(int(round(start * rate)), length), min(int(round(end * rate)), length)


def _mono_blocks(blocks, empty: str):
    """Channel means of finite blocks (librosa's to_mono); AudioRejected otherwise, or with the
    reason `empty` when there are none."""
    found = False
    for block in blocks:
        require_finite(block)
        found = True
        yield block.mean(axis=1, dtype=np.float32)
    if not found:
        raise AudioRejected(empty)


def audio_blocks(path: str, start: float = None, end: float = None) -> tuple:
    """(native rate, iterator of mono float32 blocks) of any channel count, bit depth or rate;
    with start and end (seconds), of that segment only. Raises AudioRejected (unreadable, empty,
    non-finite), at once or while iterating; a path that is not a regular file (a named pipe, a
    device) is refused without being opened."""
    problem = file_kinds.problem(path)
    if problem is not None:
        raise AudioRejected(problem)
    if path.lower().endswith(FFMPEG_EXTENSIONS):
        samples, rate = _decode_with_ffmpeg(path)
        first, stop = _segment(rate, start, end, len(samples))
        blocks = (samples[index:min(index + BLOCK_SAMPLES, stop)] for index in range(first, stop, BLOCK_SAMPLES))
    else:
        try:
            stream = soundfile.SoundFile(path)
        except (soundfile.LibsndfileError, RuntimeError, OSError) as error:
            raise AudioRejected(f'unreadable: {error}') from None
        rate = stream.samplerate
        blocks = _file_blocks(stream, *_segment(rate, start, end, stream.frames))
    empty = ('empty: no samples' if start is None
             else f"empty: the segment {start:g}-{end:g} s lies beyond the recording's end")
    return rate, _mono_blocks(blocks, empty)


def read_audio(path: str) -> tuple[np.ndarray, int]:
    """Samples of any channel count, bit depth or rate -> (mono float32 [samples], native rate)."""
    rate, blocks = audio_blocks(path)
    return np.concatenate(list(blocks)), rate


def load_audio(path: str, sample_rate: int, start: float = None, end: float = None) -> np.ndarray:
    """Mono float32 samples at sample_rate, resampled as librosa.load does (soxr HQ), a block at a
    time (soxr's stream gives the same samples as its one-shot resampling); with start and end
    (seconds), only that segment of the recording (a Kaldi segment)."""
    rate, blocks = audio_blocks(path, start, end)
    if rate == sample_rate:
        return np.concatenate(list(blocks))
    stream = soxr.ResampleStream(rate, sample_rate, 1, dtype='float32', quality='HQ')
    resampled = [stream.resample_chunk(block) for block in blocks]
    resampled.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    return np.concatenate(resampled)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate:
        return samples
    return soxr.resample(samples, from_rate, to_rate, quality='HQ').astype(np.float32, copy=False)


def preemphasis(signal: np.ndarray, coefficient: float = PREEMPHASIS) -> np.ndarray:
    """y[n] = x[n] - c x[n-1], y[0] = x[0] (scipy.signal.lfilter([1, -c], [1], x)), float64."""
    emphasised = np.empty(signal.shape, dtype=np.float64)
    emphasised[:1] = signal[:1]
    np.subtract(signal[1:], coefficient * signal[:-1].astype(np.float64), out=emphasised[1:])
    return emphasised


def _emphasised(signal: np.ndarray, start: int, stop: int, coefficient: float = PREEMPHASIS) -> np.ndarray:
    """preemphasis(signal, coefficient)[start:stop], bit for bit, from signal[start - 1:stop] only."""
    before = max(start - 1, 0)
    with np.errstate(invalid='ignore'):   # inf - inf is NaN, which trim_bounds rejects by name
        return preemphasis(signal[before:stop], coefficient)[start - before:]


def _emphasised_twice(signal: np.ndarray, start: int, stop: int) -> np.ndarray:
    """preemphasis(TRIM_GAIN * preemphasis(signal)[start:stop]) as float32 (the STFT's input
    precision), computed in float64 a block at a time as the whole-signal recipe does."""
    output = np.empty(stop - start, np.float32)
    for first in range(0, stop - start, BLOCK_SAMPLES):
        last = min(first + BLOCK_SAMPLES, stop - start)
        before = max(first - 1, 0)
        gained = _emphasised(signal, start + before, start + last) * TRIM_GAIN
        output[first:last] = preemphasis(gained)[first - before:]
    return output


def trim_bounds(signal: np.ndarray, top_db: float, coefficient: float = PREEMPHASIS,
                frame_length: int = TRIM_FRAME_LENGTH, hop_length: int = TRIM_HOP_LENGTH) -> tuple:
    """(start, end): leading and trailing silence of preemphasis(signal, coefficient), as
    librosa.effects.trim(emphasised, top_db, ...) finds it (coefficient 0: of signal itself).

    Frames are centred (zero padding of frame_length // 2); a frame is sound when its RMS is
    within top_db of the loudest frame's. (0, 0) when nothing is; AudioRejected when a frame is
    not finite (NaN would otherwise pass for sound or silence).
    """
    half = frame_length // 2
    frame_count = 1 + (len(signal) + 2 * half - frame_length) // hop_length
    block_frames = BLOCK_SAMPLES // hop_length
    mean_square = np.empty(frame_count)                                    # [frames]
    for first in range(0, frame_count, block_frames):
        last = min(first + block_frames, frame_count)
        low, high = first * hop_length - half, (last - 1) * hop_length - half + frame_length
        segment = np.zeros(high - low)                                     # the padded signal's [low, high)
        inside_low, inside_high = max(low, 0), min(high, len(signal))
        if inside_high > inside_low:
            segment[inside_low - low:inside_high - low] = _emphasised(signal, inside_low, inside_high, coefficient)
        frames = np.lib.stride_tricks.sliding_window_view(segment, frame_length)[::hop_length]
        mean_square[first:last] = np.mean(np.abs(frames) ** 2, axis=1)
    require_finite(mean_square)
    power_db = 10.0 * np.log10(np.maximum(AMPLITUDE_FLOOR ** 2, mean_square))
    reference_db = 10.0 * np.log10(max(AMPLITUDE_FLOOR ** 2, float(mean_square.max(initial=0.0))))
    sound = np.flatnonzero(power_db - reference_db > -top_db)
    if sound.size == 0:
        return 0, 0
    return int(sound[0]) * hop_length, min(len(signal), (int(sound[-1]) + 1) * hop_length)


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


def _padded(signal: np.ndarray, pad: int, start: int, stop: int) -> np.ndarray:
    """np.pad(signal, pad)[start:stop], reflect mode (constant for a signal not longer than pad,
    as librosa 0.7), without padding the whole signal."""
    index = np.arange(start, stop) - pad
    if len(signal) > pad:      # one reflection reaches every padded index
        index = np.abs(index)
        return signal[np.where(index >= len(signal), 2 * (len(signal) - 1) - index, index)]
    inside = (index >= 0) & (index < len(signal))
    segment = np.zeros(stop - start, signal.dtype)
    segment[inside] = signal[index[inside]]
    return segment


def frame_count(samples: int, n_fft: int, hop_length: int) -> int:
    """STFT frames of a signal of that many samples (centred frames)."""
    return 1 + (samples + 2 * (n_fft // 2) - n_fft) // hop_length


def magnitude_spectrogram(signal: np.ndarray, n_fft: int, win_length: int, hop_length: int,
                          first: int = 0, last: int = None) -> np.ndarray:
    """|STFT| frames [first, last) (default all) -> [frames, n_fft // 2 + 1]; centred frames,
    reflect padding (librosa 0.7's stft)."""
    last = frame_count(len(signal), n_fft, hop_length) if last is None else last
    offset = (n_fft - win_length) // 2
    # Only the window's non-zero middle contributes; rfft zero-pads it back to n_fft, which
    # shifts the phase only, so the magnitude equals the full frame's.
    segment = _padded(signal, n_fft // 2, first * hop_length + offset, (last - 1) * hop_length + offset + win_length)
    frames = np.lib.stride_tricks.sliding_window_view(segment, win_length)[::hop_length]   # [frames, win_length]
    window = _window(n_fft, win_length)[offset:offset + win_length].astype(np.float32)
    return np.abs(scipy.fft.rfft(frames.astype(np.float32) * window, n=n_fft, axis=1))


def normalised_log_mel(magnitude: np.ndarray, sound_hp) -> np.ndarray:
    """|STFT| [frames, bins] -> mel in [-Max_Abs_Mel, Max_Abs_Mel], float32 [frames, Mel_Dim]."""
    n_fft = (sound_hp.Spectrogram_Dim - 1) * 2
    mel = magnitude @ mel_basis(sound_hp.Sample_Rate, n_fft, sound_hp.Mel_Dim).T   # [frames, mel]
    decibels = 20.0 * np.log10(np.maximum(AMPLITUDE_FLOOR, mel))
    max_abs = sound_hp.Max_Abs_Mel
    normalised = 2.0 * max_abs * (decibels - MIN_LEVEL_DB) / -MIN_LEVEL_DB - max_abs
    return np.clip(normalised, -max_abs, max_abs).astype(np.float32)


def mel_from_signal(signal: np.ndarray, sound_hp, top_db: float, min_frames: int = 1,
                    setting: str = 'Sound.Min_Frames') -> np.ndarray:
    """The whole recipe after loading: mono samples at Sample_Rate -> pattern [frames, Mel_Dim].

    Raises AudioRejected for non-finite samples, silence and fewer than min_frames frames (the
    reason names `setting`, the key that asks for them).
    """
    if not np.any(signal):
        raise AudioRejected('silent: every sample is zero')
    start, end = trim_bounds(signal, top_db)
    emphasised = _emphasised_twice(signal, start, end)
    if not np.any(emphasised):
        raise AudioRejected('silent: nothing above the trim threshold')
    n_fft = (sound_hp.Spectrogram_Dim - 1) * 2
    frames = frame_count(len(emphasised), n_fft, sound_hp.Frame_Shift)
    if frames < min_frames:
        raise AudioRejected(f'too short: {frames} frames after trimming, fewer than {setting} ({min_frames})')
    return mel_of_emphasised(emphasised, sound_hp, frames)


def mel_of_emphasised(emphasised: np.ndarray, sound_hp, frames: int) -> np.ndarray:
    """Frames [0, frames) of the pattern of an emphasised signal -> float32 [frames, Mel_Dim],
    a block at a time."""
    n_fft = (sound_hp.Spectrogram_Dim - 1) * 2
    mel = np.empty((frames, sound_hp.Mel_Dim), np.float32)
    block_frames = max(1, BLOCK_SAMPLES // sound_hp.Frame_Shift)
    for first in range(0, frames, block_frames):
        last = min(first + block_frames, frames)
        magnitude = magnitude_spectrogram(emphasised, n_fft, sound_hp.Frame_Length, sound_hp.Frame_Shift, first, last)
        mel[first:last] = normalised_log_mel(magnitude, sound_hp)
    return mel


def untrimmed_mel(signal: np.ndarray, sound_hp, frames: int = None) -> np.ndarray:
    """The pattern recipe without the silence trim, so frame f is centred on sample
    f * Frame_Shift of signal: [frames (default all), Mel_Dim]. Raises AudioRejected for
    non-finite samples."""
    require_finite(signal)
    n_fft = (sound_hp.Spectrogram_Dim - 1) * 2
    total = frame_count(len(signal), n_fft, sound_hp.Frame_Shift)
    return mel_of_emphasised(_emphasised_twice(signal, 0, len(signal)), sound_hp, total if frames is None else frames)


def mel_from_file(path: str, sound_hp, top_db: float, min_frames: int = 1,
                  setting: str = 'Sound.Min_Frames') -> np.ndarray:
    """Audio file -> pattern [frames, Mel_Dim]; AudioRejected says why a file cannot be one."""
    return mel_from_signal(load_audio(path, sound_hp.Sample_Rate), sound_hp, top_db, min_frames, setting)
