"""The demo corpus's plan: speakers (a voice with its own pitch, range and rate), who is held out,
and every utterance's sentence, settings, recording condition and file, fixed by the seed."""
import dataclasses

import numpy as np

from demo_corpus.grammar import sentences
from demo_corpus.voices import voice_name

VCTK_RATE = 48000
VC1_RATE = 16000
FIRST_VCTK_SPEAKER = 225        # p225, as in VCTK
FIRST_VC1_SPEAKER = 10270       # id10270, as in the VoxCeleb1 test set
# A speaker's own settings, drawn once: eSpeak NG's pitch and pitch range (0-100, 50 the voice's
# own) and rate (words per minute); then per utterance, small changes around them.
SPEAKER_PITCH = (32, 68)
SPEAKER_PITCH_RANGE = (25, 80)
SPEAKER_RATE = (145, 210)
UTTERANCE_PITCH_JITTER = 4
UTTERANCE_RANGE_JITTER = 10
UTTERANCE_RATE_JITTER = 0.08    # fraction
# Recording conditions: speech RMS in dBFS, signal-to-noise ratio in dB, noise colour (one-pole
# coefficient: 0 white, 0.9 rumbling), channel tilt (first-order FIR coefficient: < 0 brighter,
# > 0 duller), silence before and after the speech in seconds.
LOUDNESS_DBFS = (-34.0, -18.0)
SNR_DB = (22.0, 45.0)
NOISE_COLOUR = (0.0, 0.9)
CHANNEL_TILT = (-0.5, 0.5)
SILENCE_SECONDS = (0.15, 0.6)
VIDEO_TAG_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-'


@dataclasses.dataclass(frozen=True)
class Speaker:
    name: str           # p225 (training) or id10270 (held out)
    accent: str         # eSpeak NG language, e.g. en-gb-scotland
    variant: str        # eSpeak NG variant, e.g. m3; '' for the language's own voice
    pitch: int          # eSpeak NG pitch, 0-100
    pitch_range: int    # eSpeak NG pitch range, 0-100
    rate: int           # words per minute

    @property
    def voice(self) -> str:
        return voice_name(self.accent, self.variant)


def _held_out_variants(families: dict, wanted: int, rng: np.random.Generator) -> list:
    """Whole families, in random order, as long as they fit in `wanted` variants."""
    members = {}
    for variant, family in families.items():
        members.setdefault(family, []).append(variant)
    held_out = []
    for family in rng.permutation(sorted(members)):
        if len(held_out) + len(members[family]) <= wanted:
            held_out += members[family]
        if len(held_out) == wanted:
            break
    return held_out


def _spread_pairs(variants: list, accents: list, count: int, used: set, rng: np.random.Generator) -> list:
    """count (accent, variant) pairs not in used, spread over the variants: each variant is taken once
    (with a random accent) before any is taken twice."""
    free = {variant: [accent for accent in rng.permutation(accents) if (accent, variant) not in used]
            for variant in variants}
    pairs = []
    order = list(rng.permutation(variants))
    while len(pairs) < count and any(free[variant] for variant in order):
        for variant in order:
            if free[variant] and len(pairs) < count:
                pairs.append((str(free[variant].pop()), str(variant)))
    return pairs


def build_speakers(variants: list, accents: list, train_count: int, test_count: int, seed: int,
                   families: dict = None, held_out_fraction: float = 0.25) -> tuple:
    """(training speakers, held-out speakers): lists of Speaker; no (accent, variant) pair in both.

    The held-out speakers take whole families of variants (families: variant -> family; by default
    each variant its own) that no training speaker uses, up to min(test_count, held_out_fraction of
    the variants); only if those run out of pairs do held-out speakers use a training variant, with an
    accent that no training speaker has with it. Raises ValueError when there are too few pairs.
    """
    if train_count + test_count > len(variants) * len(accents):
        raise ValueError(f'{train_count} + {test_count} speakers need more voices than the {len(variants)} variants '
                         f'x {len(accents)} accents available')
    rng = np.random.default_rng([seed, 1])
    families = families or {variant: index for index, variant in enumerate(variants)}
    wanted = min(test_count, max(1, int(held_out_fraction * len(variants)))) if test_count else 0
    held_out = _held_out_variants({variant: families[variant] for variant in variants}, wanted, rng)
    training_variants = [variant for variant in variants if variant not in held_out] or held_out
    train_pairs = _spread_pairs(training_variants, accents, train_count, set(), rng)
    if len(train_pairs) < train_count:
        raise ValueError(f'{train_count} training speakers need more than the {len(training_variants)} training '
                         f'variants x {len(accents)} accents')
    test_pairs = _spread_pairs(held_out, accents, test_count, set(train_pairs), rng)
    test_pairs += _spread_pairs(training_variants, accents, test_count - len(test_pairs),
                                set(train_pairs) | set(test_pairs), rng)
    if len(test_pairs) < test_count:
        raise ValueError(f'{test_count} held-out speakers need more voices than the training speakers leave')

    def speakers(pairs, first, prefix, digits):
        return [Speaker(f'{prefix}{first + index:0{digits}d}', accent, variant,
                        int(rng.integers(SPEAKER_PITCH[0], SPEAKER_PITCH[1] + 1)),
                        int(rng.integers(SPEAKER_PITCH_RANGE[0], SPEAKER_PITCH_RANGE[1] + 1)),
                        int(rng.integers(SPEAKER_RATE[0], SPEAKER_RATE[1] + 1)))
                for index, (accent, variant) in enumerate(pairs)]
    return speakers(train_pairs, FIRST_VCTK_SPEAKER, 'p', 3), speakers(test_pairs, FIRST_VC1_SPEAKER, 'id', 5)


@dataclasses.dataclass(frozen=True)
class Condition:
    """A recording condition: loudness, noise and channel colour."""
    loudness_dbfs: float
    snr_db: float
    noise_colour: float
    channel_tilt: float


def random_condition(rng: np.random.Generator) -> Condition:
    return Condition(float(rng.uniform(*LOUDNESS_DBFS)), float(rng.uniform(*SNR_DB)),
                     float(rng.uniform(*NOISE_COLOUR)), float(rng.uniform(*CHANNEL_TILT)))


def _near(condition: Condition, rng: np.random.Generator) -> Condition:
    """The same session, one utterance: loudness and noise level move a little."""
    return dataclasses.replace(condition, loudness_dbfs=condition.loudness_dbfs + float(rng.uniform(-3, 3)),
                               snr_db=condition.snr_db + float(rng.uniform(-3, 3)))


@dataclasses.dataclass(frozen=True)
class Utterance:
    path: str            # relative to the output folder
    sample_rate: int     # of the written file
    speaker: Speaker
    text: str
    pitch: int
    pitch_range: int
    rate: int
    word_gap: int        # eSpeak NG's extra pause between words, 10 ms units
    condition: Condition
    silence_before: float
    silence_after: float
    seed: int            # of eSpeak NG's noise and of the added noise


def _utterance(path, sample_rate, speaker, text, condition, rng) -> Utterance:
    return Utterance(
        path, sample_rate, speaker, text,
        int(np.clip(speaker.pitch + rng.integers(-UTTERANCE_PITCH_JITTER, UTTERANCE_PITCH_JITTER + 1), 0, 100)),
        int(np.clip(speaker.pitch_range + rng.integers(-UTTERANCE_RANGE_JITTER, UTTERANCE_RANGE_JITTER + 1), 0, 100)),
        int(round(speaker.rate * (1 + rng.uniform(-UTTERANCE_RATE_JITTER, UTTERANCE_RATE_JITTER)))),
        int(rng.choice((0, 0, 0, 1, 2))), condition,
        float(rng.uniform(*SILENCE_SECONDS)), float(rng.uniform(*SILENCE_SECONDS)), int(rng.integers(2 ** 31)))


def vctk_utterances(speakers: list, count: int, seed: int, sample_rate: int = VCTK_RATE) -> list:
    """count utterances per training speaker, VCTK 0.80 layout: VCTK/wav48/p225/p225_001.wav, each
    with its own sentence and recording condition."""
    planned = []
    for index, speaker in enumerate(speakers):
        rng = np.random.default_rng([seed, 2, index])
        for number, text in enumerate(sentences(rng, count), 1):
            path = f'VCTK/wav48/{speaker.name}/{speaker.name}_{number:03d}.wav'
            planned.append(_utterance(path, sample_rate, speaker, text, random_condition(rng), rng))
    return planned


def video_tag(rng: np.random.Generator) -> str:
    """An 11-character YouTube-like identifier."""
    return ''.join(VIDEO_TAG_ALPHABET[i] for i in rng.integers(len(VIDEO_TAG_ALPHABET), size=11))


def vc1_utterances(speakers: list, count: int, videos: int, seed: int) -> list:
    """count utterances per held-out speaker spread over `videos` sessions, VoxCeleb1 test layout:
    VC1_Test/wav/id10270/<video>/00001.wav; each video has its own recording condition."""
    planned = []
    for index, speaker in enumerate(speakers):
        rng = np.random.default_rng([seed, 3, index])
        tags = [video_tag(rng) for _ in range(videos)]
        conditions = [random_condition(rng) for _ in range(videos)]
        for number, text in enumerate(sentences(rng, count)):
            video = number % videos
            path = f'VC1_Test/wav/{speaker.name}/{tags[video]}/{number // videos + 1:05d}.wav'
            planned.append(_utterance(path, VC1_RATE, speaker, text, _near(conditions[video], rng), rng))
    return planned
