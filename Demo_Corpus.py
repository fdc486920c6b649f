"""A demo corpus that needs no download: many synthetic voices from eSpeak NG, in real corpus layouts.

    python Demo_Corpus.py -o Demo [--train-speakers 48] [--test-speakers 16] [--utterances 24] [-mw 2] [--seed 0]

writes

    Demo/VCTK/wav48/p225/p225_001.wav          training speakers, VCTK 0.80 layout, 48 kHz 16-bit
    Demo/VCTK/txt/p225/p225_001.txt            their sentences
    Demo/VC1_Test/wav/id10270/<video>/00001.wav  held-out speakers, VoxCeleb1 test layout, 16 kHz 16-bit
    Demo/VC1_Test/trials.txt                   '1 id10270/<video>/00001.wav id10270/<video>/00004.wav' per line
    Demo/speakers.tsv                          each speaker's voice and settings

A voice is an eSpeak NG English accent (en, en-us, en-gb-scotland, ...) with a voice variant
(m3, f2, klatt, whisper, ...); a speaker is a voice plus its own base pitch, pitch range and rate.
Variants that sound alike are found acoustically (mean log-mel of a few probe sentences): near
copies are dropped, and the held-out speakers take whole families of similar variants that no
training speaker uses, so that the test is on voices the encoder has never heard. Every utterance
has its own sentence and its own small changes of rate, pitch, loudness, noise and channel colour;
the held-out speakers' "videos" each have a recording condition of their own, as in VoxCeleb.

The output depends only on the arguments (the seed included): files are written atomically and
existing ones are skipped, so an interrupted run resumes where it stopped and gives the same corpus.
"""
import argparse
import dataclasses
import io
import multiprocessing
import os
import sys
import time

import numpy as np
import soundfile
import soxr
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.signal import lfilter
from tqdm import tqdm

import Audio
import Hyper_Parameters
import Speech_Synth
from Files import remove_temporaries, write_atomically

VCTK_RATE = 48000
VC1_RATE = 16000
FIRST_VCTK_SPEAKER = 225        # p225, as in VCTK
FIRST_VC1_SPEAKER = 10270       # id10270, as in the VoxCeleb1 test set
PROBE_SENTENCES = (
    'Please call Stella and ask her to bring these things with her from the store.',
    'Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob.',
    'We also need a small plastic snake and a big toy frog for the kids.',
)
# Distances between variants' mean normalised log-mels (80 bands in [-4, 4]) over the probe
# sentences. Reading different sentences moves one voice's mean by about 1.25 (the median); two
# variants closer than DUPLICATE_DISTANCE are one voice for our purpose, and variants within
# FAMILY_DISTANCE (average linkage) share a family: the same vocal tract at another pitch or speed.
DUPLICATE_DISTANCE = 0.9
FAMILY_DISTANCE = 2.0
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
NO_VARIANT = 'none'            # on the command line and in speakers.tsv: the language's own voice, no variant
VIDEO_TAG_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-'


# ----------------------------------------------------------------------------------------------
# Sentences

SUBJECTS = ('the old farmer', 'my neighbour', 'a young doctor', 'the tired pilot', 'our teacher', 'the new baker',
            'a quiet student', 'the village mayor', 'his sister', 'her grandfather', 'the museum guard',
            'a travelling musician', 'the ship captain', 'my best friend', 'the night nurse', 'a clever fox',
            'the office manager', 'an elderly painter', 'the radio host', 'a busy waiter', 'the football coach',
            'our landlord', 'the police officer', 'a shy child', 'the gardener', 'the bus driver',
            'a famous chef', 'the librarian', 'her cousin', 'the young engineer')
NAMES = ('Alice', 'Bernard', 'Clara', 'Dmitri', 'Eleanor', 'Fergus', 'Grace', 'Hamish', 'Isabel', 'Jonah',
         'Katherine', 'Leonard', 'Margaret', 'Nigel', 'Olivia', 'Patrick', 'Rosalind', 'Samuel', 'Theresa',
         'Victor', 'Wendy', 'Xavier', 'Yvonne', 'Zachary', 'Agnes', 'Duncan', 'Fiona', 'Gordon', 'Harriet', 'Morag')
VERBS = (('carry', 'carried'), ('paint', 'painted'), ('repair', 'repaired'), ('borrow', 'borrowed'),
         ('deliver', 'delivered'), ('clean', 'cleaned'), ('order', 'ordered'), ('move', 'moved'),
         ('find', 'found'), ('sell', 'sold'), ('buy', 'bought'), ('bring', 'brought'), ('hide', 'hid'),
         ('check', 'checked'), ('wrap', 'wrapped'), ('measure', 'measured'), ('return', 'returned'),
         ('open', 'opened'), ('fold', 'folded'), ('collect', 'collected'), ('lose', 'lost'), ('keep', 'kept'),
         ('describe', 'described'), ('photograph', 'photographed'), ('weigh', 'weighed'), ('polish', 'polished'))
ADJECTIVES = ('heavy', 'bright', 'ancient', 'fragile', 'enormous', 'tiny', 'crooked', 'golden', 'muddy', 'silver',
              'wooden', 'broken', 'shiny', 'dusty', 'purple', 'narrow', 'curious', 'rusty', 'velvet', 'frozen',
              'expensive', 'plain', 'striped', 'wrinkled', 'spotless', 'peculiar', 'copper', 'sturdy', 'faded', 'gentle')
OBJECTS = ('suitcase', 'lantern', 'bicycle', 'piano', 'umbrella', 'painting', 'kettle', 'ladder', 'mirror',
           'blanket', 'clock', 'basket', 'telescope', 'violin', 'carpet', 'statue', 'wheelbarrow', 'teapot',
           'notebook', 'saddle', 'envelope', 'chessboard', 'fishing rod', 'sewing machine', 'map', 'parcel',
           'bucket', 'rocking chair', 'typewriter', 'compass')
PLACES = ('to the station', 'across the river', 'into the cellar', 'behind the church', 'along the harbour',
          'up the narrow stairs', 'through the market', 'over the bridge', 'past the bakery', 'around the lake',
          'into the attic', 'down the hill', 'towards the lighthouse', 'beside the fountain', 'out of the barn',
          'under the old oak tree', 'into the garden shed', 'along the canal', 'across the square',
          'to the post office')
TIMES = ('yesterday morning', 'last Tuesday', 'before lunch', 'early on Sunday', 'in the middle of the night',
         'after the storm', 'during the holidays', 'at half past seven', 'on a rainy afternoon', 'just before dawn',
         'three weeks ago', 'after dinner', 'on the first of May', 'late last winter', 'this evening')
REASONS = ('because nobody else would do it', 'although it was raining', 'while the others were asleep',
           'since the shop was closing', 'so that the children could see it', 'before anyone noticed',
           'as the band began to play', 'even though it was far too late', 'while the kettle was boiling',
           'because the wind had dropped')
NUMBERS = ('two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine', 'eleven', 'twelve', 'fifteen', 'twenty')
TEMPLATES = (
    '{Subject} {past} the {adjective} {object} {place} {time}.',
    '{Name} said that {subject} {past} the {adjective} {object} {place}.',
    'Did {subject} really {verb} the {adjective} {object} {time}?',
    'Please {verb} the {adjective} {object} {place}, {reason_clause}.',
    '{Time}, {subject} {past} {number} {adjective} {object}s {place}.',
    '{Name} and {name2} {past} the {object} {time}, {reason}.',
    'Nobody knew why {subject} {past} the {adjective} {object} {place} {time}.',
    'When {name} {past} the {object}, {subject} {past2} the {adjective} {object2} {place}.',
    'I think {subject} {past} the {adjective} {object} {reason}.',
    'Could you ask {name} to {verb} the {adjective} {object} {place} {time}?',
)


def sentence(rng: np.random.Generator) -> str:
    """One English sentence of about ten to twenty words, drawn from the word lists."""
    def pick(options):
        return options[rng.integers(len(options))]
    verb, past = pick(VERBS)
    name, name2 = rng.choice(NAMES, size=2, replace=False)
    fields = {
        'subject': pick(SUBJECTS), 'name': name, 'name2': name2, 'verb': verb, 'past': past,
        'past2': pick(VERBS)[1], 'adjective': pick(ADJECTIVES), 'object': pick(OBJECTS), 'object2': pick(OBJECTS),
        'place': pick(PLACES), 'time': pick(TIMES), 'reason': pick(REASONS), 'number': pick(NUMBERS),
    }
    fields['reason_clause'] = fields['reason']
    fields['Subject'] = fields['subject'][0].upper() + fields['subject'][1:]
    fields['Name'] = fields['name']
    fields['Time'] = fields['time'][0].upper() + fields['time'][1:]
    return pick(TEMPLATES).format(**fields)


def sentences(rng: np.random.Generator, count: int) -> list:
    """count distinct sentences."""
    chosen, seen = [], set()
    while len(chosen) < count:
        text = sentence(rng)
        if text not in seen:
            seen.add(text)
            chosen.append(text)
    return chosen


# ----------------------------------------------------------------------------------------------
# Voices

def english_accents() -> list:
    """eSpeak NG's English languages and accents, whatever this data version has ('en', 'en-us', ...)."""
    return [name for name in Speech_Synth.languages() if name == 'en' or name.startswith('en-')]


def distinct_accents(accents: list) -> tuple:
    """(kept, dropped): accents whose probe sentence sounds exactly like an earlier accent's are dropped
    (en-shaw, the Shavian alphabet, reads Latin text as plain en)."""
    kept, dropped, heard = [], {}, {}
    for accent in accents:
        samples, _ = Speech_Synth.synthesize(PROBE_SENTENCES[0], accent)
        key = samples.tobytes()
        if key in heard:
            dropped[accent] = heard[key]
        else:
            heard[key] = accent
            kept.append(accent)
    return kept, dropped


def _voice(accent: str, variant: str) -> str:
    return f'{accent}+{variant}' if variant else accent


def probe_variant(variant: str, sound_hp) -> tuple:
    """(variant, mean normalised log-mel [Mel_Dim] of the probe sentences, or None when silent)."""
    mels = []
    for index, text in enumerate(PROBE_SENTENCES):
        samples, rate = Speech_Synth.synthesize(text, _voice('en', variant), seed=index)
        if np.sqrt(np.mean(samples ** 2)) < 1e-3:
            return variant, None
        try:
            mels.append(Audio.mel_from_signal(Audio.resample(samples, rate, sound_hp.Sample_Rate), sound_hp, 15))
        except Audio.AudioRejected:
            return variant, None
    return variant, np.concatenate(mels).mean(axis=0)


def distinct_variants(features: dict, duplicate_distance: float = DUPLICATE_DISTANCE) -> tuple:
    """features: variant -> mean mel (None: silent). Returns (kept variants in the given order,
    dropped: variant -> reason). A variant within duplicate_distance of a kept one is a near copy."""
    kept, dropped = [], {}
    for variant, mean_mel in features.items():
        if mean_mel is None:
            dropped[variant] = 'silent'
            continue
        distances = {other: float(np.linalg.norm(mean_mel - features[other])) for other in kept}
        nearest = min(distances, key=distances.get, default=None)
        if nearest is not None and distances[nearest] < duplicate_distance:
            dropped[variant] = f'sounds like {nearest or NO_VARIANT} (distance {distances[nearest]:.2f})'
        else:
            kept.append(variant)
    return kept, dropped


def variant_families(features: dict, family_distance: float = FAMILY_DISTANCE) -> dict:
    """variant -> family number: average-linkage clusters of the mean mels cut at family_distance."""
    names = list(features)
    if len(names) < 2:
        return {name: 0 for name in names}
    clusters = fcluster(linkage(np.stack([features[name] for name in names]), 'average'), family_distance, 'distance')
    return {name: int(cluster) for name, cluster in zip(names, clusters)}


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
        return _voice(self.accent, self.variant)


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


# ----------------------------------------------------------------------------------------------
# Utterances

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


def build_trials(files_by_speaker: dict, per_speaker: int, seed: int) -> list:
    """VoxCeleb-style trials (label, enrolment, test) with label 1 for the same speaker, 0 otherwise.

    files_by_speaker: speaker -> its files (paths as the trial list shows them, 'id10270/<video>/00001.wav');
    the video is the folder above the file. Per speaker, up to per_speaker target trials (pairs from
    different videos first, then from the same video) and as many non-target trials, each against a
    random file of another speaker; no trial twice. Deterministic for a seed.
    """
    rng = np.random.default_rng([seed, 4])
    speakers = sorted(files_by_speaker)
    trials, chosen = [], set()
    for speaker in speakers:
        files = sorted(files_by_speaker[speaker])
        pairs = [(a, b) for i, a in enumerate(files) for b in files[i + 1:]]
        cross = [pair for pair in pairs if os.path.dirname(pair[0]) != os.path.dirname(pair[1])]
        same = [pair for pair in pairs if os.path.dirname(pair[0]) == os.path.dirname(pair[1])]
        targets = [cross[i] for i in rng.permutation(len(cross))] + [same[i] for i in rng.permutation(len(same))]
        others = [file for other in speakers if other != speaker for file in sorted(files_by_speaker[other])]
        for enrolment, test in targets[:per_speaker]:
            if rng.random() < 0.5:
                enrolment, test = test, enrolment
            trials.append((1, enrolment, test))
            if not others:
                continue
            for _ in range(100):   # a fresh non-target pair; the space is large, so this ends at once
                pair = (files[rng.integers(len(files))], others[rng.integers(len(others))])
                if pair not in chosen:
                    chosen.add(pair)
                    trials.append((0,) + pair)
                    break
    return trials


# ----------------------------------------------------------------------------------------------
# Rendering

def _coloured_noise(rng: np.random.Generator, length: int, colour: float) -> np.ndarray:
    noise = lfilter([1.0], [1.0, -colour], rng.standard_normal(length))
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def render(utterance: Utterance) -> np.ndarray:
    """Synthesise and record one utterance: float32 samples at utterance.sample_rate."""
    speech, rate = Speech_Synth.synthesize(utterance.text, utterance.speaker.voice, utterance.rate, utterance.pitch,
                                           utterance.pitch_range, word_gap=utterance.word_gap, seed=utterance.seed)
    if speech.size < rate // 2 or np.sqrt(np.mean(speech.astype(np.float64) ** 2)) < 1e-3:
        raise Speech_Synth.SynthesisError(f'{utterance.speaker.voice} gave (nearly) silent audio for {utterance.path}')
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


def _make(job: tuple) -> str:
    """Worker: render one utterance and write it (and, for VCTK, its transcript)."""
    root, utterance = job
    write_atomically(os.path.join(root, utterance.path), wav_bytes(render(utterance), utterance.sample_rate))
    if utterance.path.startswith('VCTK/wav48/'):
        transcript = utterance.path.replace('VCTK/wav48/', 'VCTK/txt/', 1)[:-len('.wav')] + '.txt'
        write_atomically(os.path.join(root, transcript), (utterance.text + '\n').encode())
    return utterance.path


def _probe(job: tuple) -> tuple:
    variant, sound_hp = job
    return probe_variant(variant, sound_hp)


# ----------------------------------------------------------------------------------------------
# The command

def survey_voices(variants: list, sound_hp, pool) -> tuple:
    """Probe every variant: (kept variants, dropped: variant -> reason, families: variant -> family)."""
    features = dict(pool.imap(_probe, [(variant, sound_hp) for variant in variants]))
    kept, dropped = distinct_variants(features)
    return kept, dropped, variant_families({variant: features[variant] for variant in kept})


def speaker_mel_means(root: str, utterances: list, sound_hp, pool) -> dict:
    """speaker name -> [utterances, Mel_Dim] mean log-mels of its written files (Audio.mel_from_file, top_db 15)."""
    jobs = [(os.path.join(root, utterance.path), sound_hp) for utterance in utterances]
    means = {}
    for utterance, mean_mel in zip(utterances, pool.imap(_mean_mel, jobs, chunksize=8)):
        means.setdefault(utterance.speaker.name, []).append(mean_mel)
    return {name: np.stack(rows) for name, rows in means.items()}


def _mean_mel(job: tuple) -> np.ndarray:
    path, sound_hp = job
    return Audio.mel_from_file(path, sound_hp, 15).mean(axis=0)


def near_duplicates(mel_means: dict, distance: float = DUPLICATE_DISTANCE) -> tuple:
    """mel_means: speaker -> [utterances, Mel_Dim]. Returns (pairs of speakers whose average mean
    log-mels lie closer than distance, as (name, name, distance) closest first; the median distance of
    an utterance's mean to its own speaker's, the spread that sentences and conditions cause; [the
    closest pair])."""
    names = sorted(mel_means)
    centres = np.stack([mel_means[name].mean(axis=0) for name in names])
    between = np.linalg.norm(centres[:, None] - centres[None], axis=2)
    pairs = sorted(((names[i], names[j], float(between[i, j])) for i in range(len(names))
                    for j in range(i + 1, len(names))), key=lambda pair: pair[2])
    close = [pair for pair in pairs if pair[2] < distance]
    within = np.concatenate([np.linalg.norm(mel_means[name] - centre, axis=1) for name, centre in zip(names, centres)])
    return close, float(np.median(within)), pairs[:1]


def speakers_table(train: list, test: list) -> str:
    lines = ['speaker\tset\tvoice\taccent\tvariant\tpitch\tpitch_range\trate']
    for group, speakers in (('train', train), ('test', test)):
        lines += [f'{s.name}\t{group}\t{s.voice}\t{s.accent}\t{s.variant or NO_VARIANT}\t{s.pitch}\t{s.pitch_range}\t{s.rate}'
                  for s in speakers]
    return '\n'.join(lines) + '\n'


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Build a synthetic demo corpus (eSpeak NG voices) in the VCTK '
                                                 'and VoxCeleb1-test layouts.')
    parser.add_argument('-o', '--output', required=True, help='output folder')
    parser.add_argument('--train-speakers', type=int, default=48, help='training speakers, VCTK layout (default 48)')
    parser.add_argument('--test-speakers', type=int, default=16, help='held-out speakers, VoxCeleb1 layout (default 16)')
    parser.add_argument('--utterances', type=int, default=24, help='utterances per training speaker (default 24)')
    parser.add_argument('--test-utterances', type=int, default=12, help='utterances per held-out speaker (default 12)')
    parser.add_argument('--train-rate', type=int, default=VCTK_RATE,
                        help=f'sample rate of the training files (default {VCTK_RATE}, as VCTK; 16000 takes a third of '
                             'the disk, for large corpora: the patterns are computed at 16 kHz either way)')
    parser.add_argument('--videos', type=int, default=3, help='"videos" (recording sessions) per held-out speaker')
    parser.add_argument('--trials', type=int, default=30,
                        help='target trials per held-out speaker, and as many non-target ones (default 30)')
    parser.add_argument('--accents', help='comma-separated eSpeak NG languages (default: every English accent)')
    parser.add_argument('--variants', help=f"comma-separated eSpeak NG variants, '{NO_VARIANT}' for the language's own voice "
                                           '(default: every variant that sounds distinct)')
    parser.add_argument('--check', action='store_true',
                        help='afterwards, count near-duplicate speakers from the written files (mean log-mels)')
    parser.add_argument('-hp', '--hyper_parameters', default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                                           'Hyper_Parameter.yaml'),
                        help='hyper-parameter YAML; its Sound section gives the mel recipe of the voice checks')
    parser.add_argument('-mw', '--max_workers', type=int, default=os.cpu_count(), help='worker processes (default: all cores)')
    parser.add_argument('--seed', type=int, default=0)
    arguments = parser.parse_args(argv)
    for name in ('train_speakers', 'test_speakers', 'utterances', 'test_utterances', 'train_rate', 'videos', 'trials',
                 'max_workers'):
        if getattr(arguments, name) < (0 if name in ('train_speakers', 'test_speakers') else 1):
            parser.error(f'--{name.replace("_", "-")} is too small: {getattr(arguments, name)}')
    if arguments.test_speakers == 1:
        parser.error('--test-speakers must be 0 or at least 2 (non-target trials need another speaker)')
    return arguments


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    try:
        build(arguments)
    except (Speech_Synth.SynthesisError, ValueError) as error:   # an unknown voice; too few voices for the speakers
        print(f'Demo_Corpus.py: error: {error}', file=sys.stderr)
        return 2
    return 0


def build(arguments: argparse.Namespace) -> None:
    """The whole corpus for parsed command-line arguments; prints where everything went."""
    started = time.time()
    root = arguments.output
    sound_hp = Hyper_Parameters.load_hyper_parameters(arguments.hyper_parameters).Sound
    accents = arguments.accents.split(',') if arguments.accents else english_accents()
    variants = ([('' if name == NO_VARIANT else name) for name in arguments.variants.split(',')] if arguments.variants
                else [''] + list(Speech_Synth.variants()))
    for accent in accents:
        Speech_Synth.check_voice(accent)
    for variant in variants:
        Speech_Synth.check_voice(_voice('en', variant))
    os.makedirs(root, exist_ok=True)
    stale = remove_temporaries(root)
    if stale:
        print(f'Removed {stale} half-written files of an interrupted run.')

    with multiprocessing.Pool(arguments.max_workers) as pool:
        accents, same_accents = distinct_accents(accents)
        for accent, twin in same_accents.items():
            print(f'Accent {accent} left out: it sounds exactly like {twin}.')
        variants, dropped, families = survey_voices(variants, sound_hp, pool)
        for variant, reason in dropped.items():
            print(f'Variant {variant or NO_VARIANT} left out: {reason}.')
        print(f'{len(variants)} distinct variants in {len(set(families.values()))} families x {len(accents)} accents '
              f'= {len(variants) * len(accents)} voices available (voice survey: {time.time() - started:.0f} s).')
        train, test = build_speakers(variants, accents, arguments.train_speakers, arguments.test_speakers,
                                     arguments.seed, families)
        held_out = vc1_utterances(test, arguments.test_utterances, arguments.videos, arguments.seed)
        planned = vctk_utterances(train, arguments.utterances, arguments.seed, arguments.train_rate) + held_out
        todo = [utterance for utterance in planned if not os.path.exists(os.path.join(root, utterance.path))]
        if len(todo) < len(planned):
            print(f'{len(planned) - len(todo)} of {len(planned)} files already written: skipped.')
        for _ in tqdm(pool.imap_unordered(_make, [(root, utterance) for utterance in todo], chunksize=4),
                      total=len(todo), desc='Utterances', unit='file', smoothing=0.05):
            pass
        seconds = time.time() - started
        write_atomically(os.path.join(root, 'speakers.tsv'), speakers_table(train, test).encode())
        if test:
            files_by_speaker = {}
            for utterance in held_out:
                files_by_speaker.setdefault(utterance.speaker.name, []).append(utterance.path[len('VC1_Test/wav/'):])
            trials = build_trials(files_by_speaker, arguments.trials, arguments.seed)
            write_atomically(os.path.join(root, 'VC1_Test', 'trials.txt'),
                       ''.join(f'{label} {enrolment} {test_file}\n' for label, enrolment, test_file in trials).encode())
        if arguments.check:
            close, spread, closest = near_duplicates(speaker_mel_means(root, planned, sound_hp, pool))
            print(f'Voice check: {len(close)} of {len(train + test) * (len(train + test) - 1) // 2} pairs of speakers '
                  f'have mean log-mels closer than {DUPLICATE_DISTANCE}'
                  + (': ' + ', '.join(f'{a}~{b} {d:.2f}' for a, b, d in close) if close else '')
                  + ''.join(f'; the closest pair is {a}~{b} at {d:.2f}' for a, b, d in closest)
                  + f'; an utterance lies {spread:.2f} from its own speaker\'s mean (median).')

    held_out_variants = {speaker.variant for speaker in test} - {speaker.variant for speaker in train}
    print(f'Training speakers: {len(train)} x {arguments.utterances} utterances at {arguments.train_rate} Hz in '
          f'{os.path.join(root, "VCTK")} (Pattern_Generate.py -vctk {os.path.join(root, "VCTK")})')
    if test:
        print(f'Held-out speakers: {len(test)} x {arguments.test_utterances} utterances at {VC1_RATE} Hz in '
              f'{os.path.join(root, "VC1_Test")} (Pattern_Generate.py -vc1t {os.path.join(root, "VC1_Test")}); '
              f'{sum(s.variant in held_out_variants for s in test)} of them with variants no training speaker uses')
        print(f'Trials: {len(trials)} ({sum(t[0] for t in trials)} target) in '
              f'{os.path.join(root, "VC1_Test", "trials.txt")}, paths relative to {os.path.join(root, "VC1_Test", "wav")}')
    print(f'Speakers and voices: {os.path.join(root, "speakers.tsv")}. '
          f'{len(todo)} files written in {seconds:.0f} s.')


if __name__ == '__main__':
    sys.exit(main())
