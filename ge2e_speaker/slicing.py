"""Frame arithmetic on patterns [frames, mel_dim]: crops, symmetric reflect padding, slices.

Pure numpy functions shared by training batches and inference (SPEC sections 4 and 5).
"""
import numpy as np


def reflect_pad(mel: np.ndarray, length: int) -> np.ndarray:
    """Pad [frames, mel_dim] to [length, mel_dim] by reflection, half before and half after
    (the extra frame of an odd pad goes after), as the seed did."""
    missing = length - mel.shape[0]
    if missing <= 0:
        return mel
    mode = 'reflect' if mel.shape[0] > 1 else 'edge'
    return np.pad(mel, [(missing // 2, missing - missing // 2), (0, 0)], mode=mode)


def crop_or_pad(mel: np.ndarray, length: int, offset: int = None) -> np.ndarray:
    """[frames, mel_dim] -> [length, mel_dim]: a crop at offset (centred when None) if longer,
    symmetric reflect padding if shorter."""
    if mel.shape[0] <= length:
        return reflect_pad(mel, length)
    if offset is None:
        offset = (mel.shape[0] - length) // 2
    return mel[offset:offset + length]


def multi_slices(mel: np.ndarray, samples: int = 5, frame_length: int = 64, overlap: int = 32) -> np.ndarray:
    """The seed's multi-slice windows: [frames, mel_dim] -> [samples, frame_length, mel_dim].

    The mel is brought to samples * (frame_length - overlap) + overlap frames (192 by default;
    a centred crop, where the seed's was random) and cut into windows overlapping by overlap.
    """
    hop = frame_length - overlap
    span = crop_or_pad(mel, samples * hop + overlap)
    return np.stack([span[index * hop:index * hop + frame_length] for index in range(samples)])


def sliding_windows(mel: np.ndarray, frame_length: int = 64, overlap: int = 32) -> np.ndarray:
    """Windows covering the whole utterance: [frames, mel_dim] -> [windows, frame_length, mel_dim].
    A short utterance is reflect-padded to one window; the last window ends at the last frame."""
    mel = reflect_pad(mel, frame_length)
    return np.stack([mel[start:start + frame_length] for start in window_starts(mel.shape[0], frame_length, overlap)])


def window_starts(frames: int, frame_length: int = 64, overlap: int = 32) -> list:
    """First frames of sliding_windows' windows over `frames` frames (at least frame_length):
    every frame_length - overlap frames, and one more that ends at the last frame."""
    starts = list(range(0, frames - frame_length + 1, frame_length - overlap))
    if starts[-1] != frames - frame_length:
        starts.append(frames - frame_length)
    return starts
