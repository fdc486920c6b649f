"""The demo corpus's voices: eSpeak NG's English accents and voice variants, checked by ear in
numbers (the mean log-mel of probe sentences, audio.py's recipe): near copies are dropped, similar
variants grouped into families; and the --check of a written corpus for near-duplicate speakers."""
import os

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

from ge2e_speaker import audio
from demo_corpus import speech_synth

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
NO_VARIANT = 'none'            # on the command line and in speakers.tsv: the language's own voice, no variant


def english_accents() -> list:
    """eSpeak NG's English languages and accents, whatever this data version has ('en', 'en-us', ...)."""
    return [name for name in speech_synth.languages() if name == 'en' or name.startswith('en-')]


def distinct_accents(accents: list) -> tuple:
    """(kept, dropped): accents whose probe sentence sounds exactly like an earlier accent's are dropped
    (en-shaw, the Shavian alphabet, reads Latin text as plain en)."""
    kept, dropped, heard = [], {}, {}
    for accent in accents:
        samples, _ = speech_synth.synthesize(PROBE_SENTENCES[0], accent)
        key = samples.tobytes()
        if key in heard:
            dropped[accent] = heard[key]
        else:
            heard[key] = accent
            kept.append(accent)
    return kept, dropped


def voice_name(accent: str, variant: str) -> str:
    """eSpeak NG's name of a voice: '<accent>[+<variant>]'."""
    return f'{accent}+{variant}' if variant else accent


def probe_variant(variant: str, sound_hp) -> tuple:
    """(variant, mean normalised log-mel [Mel_Dim] of the probe sentences, or None when silent)."""
    mels = []
    for index, text in enumerate(PROBE_SENTENCES):
        samples, rate = speech_synth.synthesize(text, voice_name('en', variant), seed=index)
        if np.sqrt(np.mean(samples ** 2)) < 1e-3:
            return variant, None
        try:
            mels.append(audio.mel_from_signal(audio.resample(samples, rate, sound_hp.Sample_Rate), sound_hp, 15))
        except audio.AudioRejected:
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


def _probe(job: tuple) -> tuple:
    variant, sound_hp = job
    return probe_variant(variant, sound_hp)


def survey_voices(variants: list, sound_hp, pool) -> tuple:
    """Probe every variant: (kept variants, dropped: variant -> reason, families: variant -> family)."""
    features = dict(pool.imap(_probe, [(variant, sound_hp) for variant in variants]))
    kept, dropped = distinct_variants(features)
    return kept, dropped, variant_families({variant: features[variant] for variant in kept})


def speaker_mel_means(root: str, utterances: list, sound_hp, pool) -> dict:
    """speaker name -> [utterances, Mel_Dim] mean log-mels of its written files (audio.mel_from_file, top_db 15)."""
    jobs = [(os.path.join(root, utterance.path), sound_hp) for utterance in utterances]
    means = {}
    for utterance, mean_mel in zip(utterances, pool.imap(_mean_mel, jobs, chunksize=8)):
        means.setdefault(utterance.speaker.name, []).append(mean_mel)
    return {name: np.stack(rows) for name, rows in means.items()}


def _mean_mel(job: tuple) -> np.ndarray:
    path, sound_hp = job
    return audio.mel_from_file(path, sound_hp, 15).mean(axis=0)


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
