"""Embeddings over time: partial embeddings of an utterance's windows, the samples each covers,
and the same computed on a signal that grows chunk by chunk.

Partials are computed on the untrimmed signal, so that each window's span is exact in the
caller's samples: window i covers frames [s_i, s_i + Train.Inference.Frame_Length) of the
pattern (slicing.window_starts: one every Frame_Length - Overlap_Length frames, and one ending at
the last frame), frame f being centred on sample f * Sound.Frame_Shift at Sound.Sample_Rate.
"""
import numpy as np

from . import audio, slicing


def spans_of(starts: list, window: int, frame_shift: int, samples: int, ratio: float, final: bool = True) -> list:
    """slice(start, stop) of the input's samples for windows starting at frames `starts`
    (`window` frames long); ratio = input rate / model rate. The window at frame 0 starts at
    sample 0 and, when `final`, the last one stops at `samples`: together they cover the signal."""
    spans = []
    for index, start in enumerate(starts):
        first = 0 if start == 0 else min(samples, round(start * frame_shift * ratio))
        last = final and index == len(starts) - 1
        spans.append(slice(first, samples if last else min(samples, round((start + window) * frame_shift * ratio))))
    return spans


class Windows:
    """Partial windows of signals at the model's rate (Sound.Sample_Rate), cut as
    Train.Inference says."""

    def __init__(self, sound_hp, inference_hp):
        self.sound_hp = sound_hp
        self.length = inference_hp.Frame_Length
        self.overlap = inference_hp.Overlap_Length

    def of(self, signal: np.ndarray, samples: int, ratio: float) -> tuple:
        """(windows float32 [n, Frame_Length, Mel_Dim], spans [n]) of a whole signal."""
        mel = slicing.reflect_pad(audio.untrimmed_mel(signal, self.sound_hp), self.length)
        starts = slicing.window_starts(mel.shape[0], self.length, self.overlap)
        windows = np.stack([mel[start:start + self.length] for start in starts])
        return windows, spans_of(starts, self.length, self.sound_hp.Frame_Shift, samples, ratio)

    def ready(self, signal: np.ndarray, stable: int, emitted: int) -> tuple:
        """The windows after the first `emitted` of a signal whose first `stable` samples will
        not change, which whole-signal windows will equal: those whose last frame's STFT frame
        lies within the stable samples, that start where the whole signal's regular ones do, and
        that a next regular window follows (so none of them is the whole signal's last).
        Returns (windows [k, Frame_Length, Mel_Dim], their start frames)."""
        n_fft = (self.sound_hp.Spectrogram_Dim - 1) * 2
        hop = self.length - self.overlap
        frames = max(0, (stable - n_fft // 2) // self.sound_hp.Frame_Shift)   # frames f with f*shift + n_fft/2 <= stable
        starts = list(range(emitted * hop, frames - self.length - hop + 1, hop))
        if not starts:
            return np.zeros((0, self.length, self.sound_hp.Mel_Dim), np.float32), []
        mel = audio.untrimmed_mel(signal, self.sound_hp, starts[-1] + self.length)
        return np.stack([mel[start:start + self.length] for start in starts]), starts


class PartialStream:
    """Partial embeddings of a signal that arrives in chunks (a microphone, a call): push()
    returns the partials that the samples so far determine, close() the rest. Together they
    equal SpeakerEncoder.embed_utterance(whole signal, return_partials=True)'s partials and
    spans. Made by SpeakerEncoder.stream(sample_rate)."""

    RESAMPLER_MARGIN = 0.05   # seconds at the end of a resampled prefix that may still change

    def __init__(self, encoder, sample_rate: int):
        self.encoder = encoder
        self.sample_rate = sample_rate
        self.chunks = []
        self.emitted = 0

    def _signal(self) -> tuple:
        samples = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        return samples, self.encoder.model_signal(samples, self.sample_rate)

    def push(self, chunk: np.ndarray) -> tuple:
        """chunk: mono samples [m] at the stream's rate. Returns (partials float32 [k, 256] unit
        rows, spans [k] slices of the whole signal's samples), k >= 0."""
        self.chunks.append(self.encoder.as_float(chunk))
        samples, signal = self._signal()
        ratio = self.sample_rate / self.encoder.hp.Sound.Sample_Rate
        margin = 0 if ratio == 1 else int(self.RESAMPLER_MARGIN * self.encoder.hp.Sound.Sample_Rate)
        windows, starts = self.encoder.partial_windows.ready(signal, len(signal) - margin, self.emitted)
        if not starts:
            return np.zeros((0, self.encoder.embedding_size), np.float32), []
        self.emitted += len(starts)
        window = self.encoder.partial_windows.length
        spans = spans_of(starts, window, self.encoder.hp.Sound.Frame_Shift, len(samples), ratio, final=False)
        return self.encoder.embed_window_batch(windows, [1] * len(windows)), spans

    def close(self) -> tuple:
        """The partials and spans not yet returned, now that the signal is whole."""
        samples, _ = self._signal()
        _, partials, spans = self.encoder.embed_utterance(samples, self.sample_rate, return_partials=True)
        return partials[self.emitted:], spans[self.emitted:]
