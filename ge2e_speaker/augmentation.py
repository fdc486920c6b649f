"""Data augmentation: speed perturbation of waveforms, and noise, babble, rooms and masks on mel patterns.

Speed perturbation happens at pattern time (Pattern_Generate.py --speed): the waveform is
resampled as Kaldi's and WeSpeaker's `speed` does, so pitch and tempo change together, and each
factor is a new speaker. Everything else happens on the fly, on the training device, to the
batch of patterns [utterances, mel_dim, frames]: the patterns are turned back into mel power,
mixed with noise (coloured noise, or babble of other speakers of the batch) at a drawn SNR or
convolved band by band with a simulated room's energy envelope, and turned into patterns again.
Mixing powers drops the cross terms of speech and noise, whose expectation is zero; SNRs are
ratios of mel power (of the pre-emphasised signal, as the recipe computes it). Then
SpecAugment-style masks cover spans of frames and of mel bands.
"""
import math

import numpy as np
import soxr
import torch

from . import audio

SPEED_SUFFIX = '-SP'          # P225 at speed 0.9 -> P225-SP090: a new speaker of the same dataset tag
NOISE_SECONDS = 20            # length of each coloured-noise recording of the noise bank
NOISE_RECORDINGS = 12         # coloured noises in the bank, exponents spread over [0, 2] (white to brown)


def speed_perturb(samples: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """samples played `factor` times faster [len / factor]: read as if at sample_rate * factor
    and resampled to sample_rate (soxr HQ), so pitch and tempo change together."""
    if factor == 1:
        return samples
    return soxr.resample(samples, sample_rate * factor, sample_rate, quality='HQ').astype(np.float32, copy=False)


def speed_speaker(speaker: str, factor: float) -> str:
    """The speaker id of `speaker` perturbed by `factor`: P225, 0.9 -> P225-SP090 (no dot: the
    seed's pattern names are dot-separated)."""
    return f'{speaker}{SPEED_SUFFIX}{round(factor * 100):03d}'


def parse_speeds(text) -> list:
    """'0.9,1.1' (or a list of numbers) -> [0.9, 1.1]; 1 is the clean pattern and is dropped.
    Raises ValueError for factors outside (0.5, 2) or text that is not numbers."""
    values = text if isinstance(text, (list, tuple)) else [part for part in str(text).split(',') if part.strip()]
    factors = sorted({float(value) for value in values} - {1.0})
    for factor in factors:
        if not 0.5 < factor < 2 or not math.isfinite(factor):
            raise ValueError(f'speed factor {factor:g} is outside (0.5, 2)')
    return factors


def room_impulse_response(rng: np.random.Generator, sample_rate: int, rt60_range: tuple) -> np.ndarray:
    """A shoebox room's impulse response [samples], image-source method (pyroomacoustics): a room
    3-10 m x 3-8 m x 2.5-4 m, a reverberation time drawn from rt60_range (s), source and
    microphone at random places 0.5 m or more from the walls. Starts at the direct path."""
    import pyroomacoustics   # here: it takes seconds to import, and only runs with rooms need it
    dimensions = rng.uniform([3, 3, 2.5], [10, 8, 4])
    rt60 = rng.uniform(*rt60_range)
    absorption, max_order = pyroomacoustics.inverse_sabine(rt60, dimensions)
    room = pyroomacoustics.ShoeBox(dimensions, fs=sample_rate, materials=pyroomacoustics.Material(absorption),
                                   max_order=min(max_order, 40))
    room.add_source(rng.uniform(0.5, dimensions - 0.5))
    room.add_microphone(rng.uniform(0.5, dimensions - 0.5))
    room.compute_rir()
    response = np.asarray(room.rir[0][0], dtype=np.float64)
    direct = int(np.argmax(np.abs(response)))
    return response[direct:].astype(np.float32)


def coloured_noise(rng: np.random.Generator, samples: int, exponent: float) -> np.ndarray:
    """Gaussian noise whose power falls as 1 / f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(samples))
    frequencies = np.fft.rfftfreq(samples)
    frequencies[0] = frequencies[1]
    noise = np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=samples)
    return (noise / np.sqrt(np.mean(noise ** 2))).astype(np.float32)


def mel_power_frames(signal: np.ndarray, sound_hp) -> np.ndarray:
    """Mel power [Mel_Dim, frames] of a signal, pre-emphasised twice as the pattern recipe is,
    before the decibels: the domain where augmentation mixes."""
    n_fft = (sound_hp.Spectrogram_Dim - 1) * 2
    emphasised = audio.preemphasis(audio.preemphasis(signal))
    magnitude = audio.magnitude_spectrogram(emphasised, n_fft, sound_hp.Frame_Length, sound_hp.Frame_Shift)
    mel = magnitude @ audio.mel_basis(sound_hp.Sample_Rate, n_fft, sound_hp.Mel_Dim).T   # [frames, mel]
    return (mel.T.astype(np.float64) ** 2).astype(np.float32)


def room_envelopes(rng: np.random.Generator, sound_hp, rooms: int, rt60_range: tuple) -> torch.Tensor:
    """Energy envelopes [rooms, Mel_Dim, taps] of simulated rooms, per mel band and frame, each
    band's taps summing to 1 (a room changes the spectrum's shape over time, not its level)."""
    responses = [room_impulse_response(rng, sound_hp.Sample_Rate, rt60_range) for _ in range(rooms)]
    envelopes = [mel_power_frames(response, sound_hp) for response in responses]
    taps = max(envelope.shape[1] for envelope in envelopes)
    bank = np.zeros((rooms, sound_hp.Mel_Dim, taps), np.float32)
    for index, envelope in enumerate(envelopes):
        bank[index, :, :envelope.shape[1]] = envelope
    return torch.from_numpy(bank / np.maximum(bank.sum(axis=2, keepdims=True), 1e-20))


def noise_bank(rng: np.random.Generator, sound_hp) -> torch.Tensor:
    """Mel power [NOISE_RECORDINGS, Mel_Dim, frames] of coloured noises, exponents 0 to 2."""
    samples = NOISE_SECONDS * sound_hp.Sample_Rate
    return torch.from_numpy(np.stack([mel_power_frames(coloured_noise(rng, samples, exponent), sound_hp)
                                      for exponent in np.linspace(0, 2, NOISE_RECORDINGS)]))


def pattern_to_power(patterns: torch.Tensor, max_abs_mel: float) -> torch.Tensor:
    """Patterns in [-Max_Abs_Mel, Max_Abs_Mel] -> mel power (the inverse of audio.normalised_log_mel)."""
    decibels = (patterns.float() + max_abs_mel) * (-audio.MIN_LEVEL_DB) / (2 * max_abs_mel) + audio.MIN_LEVEL_DB
    return torch.pow(10.0, decibels / 10)


def power_to_pattern(power: torch.Tensor, max_abs_mel: float) -> torch.Tensor:
    """Mel power -> patterns in [-Max_Abs_Mel, Max_Abs_Mel], as audio.normalised_log_mel does."""
    decibels = 10 * torch.log10(torch.clamp(power, min=audio.AMPLITUDE_FLOOR ** 2))
    normalised = 2 * max_abs_mel * (decibels - audio.MIN_LEVEL_DB) / -audio.MIN_LEVEL_DB - max_abs_mel
    return torch.clamp(normalised, -max_abs_mel, max_abs_mel)


def mix_at_snr(speech: torch.Tensor, noise: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """Mel powers [n, mel, frames] of speech plus noise scaled so that, per utterance, mean speech
    power / mean noise power = 10^(snr_db / 10) (snr_db [n])."""
    speech_power = speech.mean(dim=(1, 2))
    noise_power = noise.mean(dim=(1, 2)).clamp(min=1e-30)
    gain = speech_power / (noise_power * torch.pow(10.0, snr_db / 10))
    return speech + gain[:, None, None] * noise


def reverberate(power: torch.Tensor, envelopes: torch.Tensor) -> torch.Tensor:
    """Mel powers [n, mel, frames] heard in rooms (envelopes [n, mel, taps]): per band, a causal
    convolution over frames."""
    utterances, bands, frames = power.shape
    taps = envelopes.shape[2]
    padded = torch.nn.functional.pad(power.reshape(1, utterances * bands, frames), (taps - 1, 0))
    kernel = envelopes.flip(2).reshape(utterances * bands, 1, taps)
    return torch.nn.functional.conv1d(padded, kernel, groups=utterances * bands).reshape(utterances, bands, frames)


def mask_spans(count: int, width: int, size: int, utterances: int, generator: torch.Generator) -> tuple:
    """SpecAugment's spans: per utterance `count` spans, each of a width drawn from 0..width and
    a start drawn so it fits in size. Returns (starts, widths), each [utterances, count]."""
    device = generator.device
    widths = torch.randint(0, min(width, size) + 1, (utterances, count), generator=generator, device=device)
    starts = (torch.rand((utterances, count), generator=generator, device=device) * (size - widths + 1)).long()
    return starts, widths


def span_mask(starts: torch.Tensor, widths: torch.Tensor, size: int) -> torch.Tensor:
    """Boolean [utterances, size]: True inside any span."""
    positions = torch.arange(size, device=starts.device)[None, None, :]
    inside = (positions >= starts[..., None]) & (positions < (starts + widths)[..., None])
    return inside.any(dim=1)


class BatchAugmenter:
    """Augments training batches [utterances, mel_dim, frames] on their device, reproducibly:
    the draws of step N depend on the seed and N alone, so a resumed run augments as the
    uninterrupted one would. settings: the Augmentation section; utterances_per_speaker: the
    batch's speaker-major layout (babble comes from other speakers)."""

    def __init__(self, settings, sound_hp, utterances_per_speaker: int, device: torch.device, seed: int = 0):
        self.settings = settings
        self.max_abs_mel = sound_hp.Max_Abs_Mel
        self.utterances_per_speaker = utterances_per_speaker
        self.device = device
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.noises = noise_bank(rng, sound_hp).to(device) if settings.Noise.Probability > 0 else None
        self.rooms = (room_envelopes(rng, sound_hp, settings.Reverb.Rooms, settings.Reverb.RT60).to(device)
                      if settings.Reverb.Probability > 0 else None)

    @staticmethod
    def enabled(settings) -> bool:
        return (max(settings.Noise.Probability, settings.Babble.Probability, settings.Reverb.Probability) > 0
                or settings.Time_Mask.Count * settings.Time_Mask.Width > 0
                or settings.Frequency_Mask.Count * settings.Frequency_Mask.Width > 0)

    @staticmethod
    def describe(settings) -> str:
        """One line: what is on, e.g. 'noise 0.3 at 5-20 dB, room 0.3, 2 time masks of <= 10 frames'."""
        parts = []
        if settings.Noise.Probability:
            parts.append(f'coloured noise {settings.Noise.Probability:g} at {settings.Noise.SNR[0]:g}-{settings.Noise.SNR[1]:g} dB')
        if settings.Babble.Probability:
            parts.append(f'babble {settings.Babble.Probability:g} of {settings.Babble.Speakers[0]:g}-'
                         f'{settings.Babble.Speakers[1]:g} speakers at {settings.Babble.SNR[0]:g}-{settings.Babble.SNR[1]:g} dB')
        if settings.Reverb.Probability:
            parts.append(f'rooms {settings.Reverb.Probability:g} ({settings.Reverb.Rooms} rooms, RT60 '
                         f'{settings.Reverb.RT60[0]:g}-{settings.Reverb.RT60[1]:g} s)')
        for name, mask, unit in (('time', settings.Time_Mask, 'frames'), ('frequency', settings.Frequency_Mask, 'mel bands')):
            if mask.Count * mask.Width:
                parts.append(f'{mask.Count} {name} masks of <= {mask.Width} {unit}')
        return ', '.join(parts)

    @torch.no_grad()
    def __call__(self, patterns: torch.Tensor, step: int) -> torch.Tensor:
        generator = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + step)
        utterances, bands, frames = patterns.shape
        augmented = patterns.float().clone()
        chosen = self._draw_kinds(utterances, generator)
        if chosen.any():
            power = pattern_to_power(augmented, self.max_abs_mel)
            mixed = power.clone()
            if self.rooms is not None and chosen[:, 2].any():
                rooms = torch.randint(0, len(self.rooms), (utterances,), generator=generator, device=self.device)
                heard = chosen[:, 2].nonzero().squeeze(1)
                mixed[heard] = reverberate(power[heard], self.rooms[rooms[heard]])
            for kind in (0, 1):
                if chosen[:, kind].any():
                    noise = self._noise(power, frames, generator) if kind == 0 else self._babble(power, generator)
                    low, high = (self.settings.Noise.SNR if kind == 0 else self.settings.Babble.SNR)
                    snr = low + (high - low) * torch.rand(utterances, generator=generator, device=self.device)
                    noisy = chosen[:, kind].nonzero().squeeze(1)
                    if noise.any():
                        mixed[noisy] = mix_at_snr(mixed[noisy], noise[noisy], snr[noisy])
            changed = chosen.any(dim=1).nonzero().squeeze(1)
            augmented[changed] = power_to_pattern(mixed[changed], self.max_abs_mel)
        augmented = self._mask(augmented, generator)
        return augmented.to(patterns.dtype)

    def _draw_kinds(self, utterances: int, generator: torch.Generator) -> torch.Tensor:
        """Boolean [utterances, 3]: noise, babble, room, each with its probability."""
        probabilities = torch.tensor([self.settings.Noise.Probability, self.settings.Babble.Probability,
                                      self.settings.Reverb.Probability], device=self.device)
        return torch.rand((utterances, 3), generator=generator, device=self.device) < probabilities

    def _noise(self, power: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
        """Crops [utterances, mel, frames] of random coloured noises of the bank."""
        noises = self.noises.repeat(1, 1, -(-frames // self.noises.shape[2]))   # long batches: noise looped
        recordings, _, length = noises.shape
        which = torch.randint(0, recordings, (power.shape[0],), generator=generator, device=self.device)
        offsets = torch.randint(0, length - frames + 1, (power.shape[0],), generator=generator, device=self.device)
        columns = offsets[:, None] + torch.arange(frames, device=self.device)[None, :]   # [utterances, frames]
        return noises[which[:, None], :, columns].permute(0, 2, 1)   # [utterances, mel, frames]

    def _babble(self, power: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Sums of 3..n utterances [utterances, mel, frames] of other speakers of the batch."""
        utterances = power.shape[0]
        per_speaker = self.utterances_per_speaker
        speakers = utterances // per_speaker
        low, high = self.settings.Babble.Speakers
        talkers = int(torch.randint(int(low), int(high) + 1, (1,), generator=generator, device=self.device))
        index = torch.arange(utterances, device=self.device)
        babble = torch.zeros_like(power)
        for _ in range(min(talkers, speakers - 1)):   # none in a batch of one speaker: no babble
            other_speaker = torch.randint(1, speakers, (utterances,), generator=generator, device=self.device)
            other = torch.randint(0, per_speaker, (utterances,), generator=generator, device=self.device)
            babble += power[(index // per_speaker + other_speaker) % speakers * per_speaker + other]
        return babble

    def _mask(self, patterns: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Time and frequency masks, filled with each utterance's mean value."""
        utterances, bands, frames = patterns.shape
        fill = patterns.mean(dim=(1, 2), keepdim=True)
        for settings, size, axis in ((self.settings.Time_Mask, frames, 2), (self.settings.Frequency_Mask, bands, 1)):
            if settings.Count * settings.Width == 0:
                continue
            mask = span_mask(*mask_spans(settings.Count, settings.Width, size, utterances, generator), size)
            patterns = torch.where(mask[:, None, :] if axis == 2 else mask[:, :, None], fill, patterns)
        return patterns
