"""The corpora Pattern_Generate.py reads: each corpus layout's speaker rule, and the jobs of a corpus
(one audio file and where its pattern goes).

To read another layout, write its speaker rule (path -> (speaker, stem[, video]) or None to skip
the file), add it to CORPORA under a flag name, and give Pattern_Generate.py that flag.
"""
import os
import re
from dataclasses import dataclass

import Patterns
from Audio import audio_files

VCTK_MIC = re.compile(r'^(?P<stem>.+)_(?P<mic>mic\d)$')
CMU_ARCTIC_FOLDER = re.compile(r'^cmu_us_(?P<speaker>[^_]+)_arctic$', re.IGNORECASE)


@dataclass(frozen=True)
class Job:
    """One audio file and where its pattern goes."""
    audio_path: str
    dataset: str       # VCTK, VC1, VC2, Libri, CMUA
    speaker: str
    pattern_file: str  # relative to root: <Dataset>/<name>.PICKLE
    root: str          # the pattern root (train or eval)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _parts(path: str) -> list:
    return os.path.normpath(path).split(os.sep)


def vctk_speaker(path: str, mic: str = 'mic1'):
    """(speaker, stem) of wav48/p225/p225_001.wav or wav48_silence_trimmed/p225/p225_001_mic1.flac;
    None for the other microphone of VCTK 0.92."""
    stem = _stem(path)
    match = VCTK_MIC.match(stem)
    if match:
        if match['mic'] != mic:
            return None
        stem = match['stem']
    return _parts(path)[-2], stem


def libri_speaker(path: str):
    """<subset>/<speaker>/<chapter>/<file> -> (speaker, stem)."""
    return _parts(path)[-3], _stem(path)


def cmu_arctic_speaker(path: str):
    """cmu_us_<spk>_arctic/wav/arctic_a0001.wav -> (spk, stem); None outside such a folder."""
    for part in reversed(_parts(path)[:-1]):
        match = CMU_ARCTIC_FOLDER.match(part)
        if match:
            return match['speaker'], _stem(path)
    return None


def voxceleb_speaker(path: str):
    """.../id10001/<video>/00001.wav -> (id10001, stem, video)."""
    parts = _parts(path)
    return parts[-3], _stem(path), parts[-2]


CORPORA = {   # flag: (dataset tag, speaker rule, eval set?)
    'vctk': ('VCTK', vctk_speaker, False),
    'vc1': ('VC1', voxceleb_speaker, False),
    'vc2': ('VC2', voxceleb_speaker, False),
    'libri': ('Libri', libri_speaker, False),
    'cmua': ('CMUA', cmu_arctic_speaker, False),
    'vc1t': ('VC1', voxceleb_speaker, True),
}


def corpus_jobs(flag: str, corpus_root: str, hp, vctk_mic: str = 'mic1') -> list:
    """The jobs of one corpus flag, in a stable order."""
    dataset, speaker_rule, is_eval = CORPORA[flag]
    root = hp.Train.Eval_Pattern.Path if is_eval else hp.Train.Train_Pattern.Path
    jobs = []
    for path in audio_files(corpus_root):
        identity = speaker_rule(path, vctk_mic) if flag == 'vctk' else speaker_rule(path)
        if identity is None:
            continue
        speaker, stem, *video = identity
        name = Patterns.pattern_name(dataset, speaker, stem, video[0] if video else None)
        jobs.append(Job(path, dataset, speaker.upper(), f'{dataset}/{name}', root))
    return jobs
