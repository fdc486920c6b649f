"""Where each corpus layout keeps its audio and whose voice each file is: corpus folder -> Jobs.

The five corpora of the original (VCTK, VoxCeleb1/2, LibriTTS, CMU Arctic) have fixed layouts
and tags; users' own data comes as Kaldi data directories (`-kaldi`) or one folder per speaker
(`-folder`), each tagged with its folder's name unless the user names it (`-kaldi TAG=DIR`).
Readers never open audio; bad entries are reported through `report(line, reason)` and skipped.
"""
import os
import re
from dataclasses import dataclass

from . import file_kinds, patterns
from .audio import audio_files
VCTK_MIC = re.compile(r'^(?P<stem>.+)_(?P<mic>mic\d)$')
CMU_ARCTIC_FOLDER = re.compile(r'^cmu_us_(?P<speaker>[^_]+)_arctic$', re.IGNORECASE)
TAG = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_-]*$')   # a dataset tag: part of every pattern's name


class CorpusError(ValueError):
    """A corpus cannot be read at all (a missing folder or file); the message says what to do."""


@dataclass(frozen=True)
class Job:
    """One audio file (or a segment of one) and where its pattern goes."""
    audio_path: str
    dataset: str          # VCTK, VC1, VC2, Libri, CMUA, or a Kaldi/folder corpus's tag
    speaker: str
    pattern_file: str     # relative to root: <Dataset>/<name>.PICKLE
    root: str             # the pattern root (train or eval)
    start: float = None   # seconds: a Kaldi segment of the recording
    end: float = None
    speed: float = 1.0    # speed perturbation factor (augmentation.speed_perturb); 1: the recording as it is


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
USER_CORPORA = {   # flag: (reader, eval set?); repeatable, tagged by the user or the folder's name
    'kaldi': ('kaldi', False),
    'kaldit': ('kaldi', True),
    'folder': ('folder', False),
    'foldert': ('folder', True),
}


def corpus_jobs(flag: str, corpus_root: str, root: str, vctk_mic: str = 'mic1') -> list:
    """The jobs of one of the original's corpus flags, in a stable order; patterns go below root."""
    dataset, speaker_rule, _ = CORPORA[flag]
    jobs = []
    for path in audio_files(corpus_root):
        identity = speaker_rule(path, vctk_mic) if flag == 'vctk' else speaker_rule(path)
        if identity is None:
            continue
        speaker, stem, *video = identity
        name = patterns.pattern_name(dataset, speaker, stem, video[0] if video else None)
        jobs.append(Job(path, dataset, patterns.speaker_id(speaker), f'{dataset}/{name}', root))
    return jobs


def split_tag(argument: str) -> tuple:
    """'TAG=DIR' -> (TAG, DIR); a plain 'DIR' -> (its folder name, DIR). Raises CorpusError for a
    tag that cannot be part of a pattern name."""
    tag, separator, folder = argument.partition('=')
    if not separator or not TAG.match(tag) or os.path.isdir(argument):
        folder = argument
        tag = os.path.basename(os.path.normpath(os.path.abspath(argument)))
        if not TAG.match(tag):
            raise CorpusError(f'{argument}: the folder name {tag!r} cannot be a dataset tag (letters, digits, _ '
                              f'and -); name the corpus: TAG={argument}')
    return tag, folder


def _pattern_file(tag: str, speaker: str, stem: str) -> str:
    return f'{tag}/{patterns.pattern_name(tag, speaker, stem)}'


def check_distinct_speakers(names, where: str, what: str) -> None:
    """Raise CorpusError, before anything is written, when two speaker names of one corpus give one
    speaker id (patterns.speaker_id: 'Anna' and 'anna' are both ANNA): naming both, and how to fix it."""
    by_id = {}
    for name in sorted(set(names)):
        by_id.setdefault(patterns.speaker_id(name), []).append(name)
    clashes = [found for found in by_id.values() if len(found) > 1]
    if clashes:
        shown = '; '.join(' and '.join(repr(name) for name in found) + f' would both be speaker '
                          f'{patterns.speaker_id(found[0])}' for found in clashes[:3])
        more = f' (and {len(clashes) - 3} more)' if len(clashes) > 3 else ''
        raise CorpusError(f'{where}: {shown}{more}: pattern names upper-case speaker ids and write "." as "_", so '
                          f'their recordings would merge into one speaker. Rename one {what} (for example '
                          f'{clashes[0][1]} -> {clashes[0][1]}_2), or give each its own corpus and tag '
                          f'(-folder TAG=DIR, -kaldi TAG=DIR). Nothing was written.')


def folder_jobs(corpus_root: str, tag: str, root: str) -> list:
    """One folder per speaker: corpus_root/<speaker>/**/<file>, at any depth below the speaker's
    folder. The stem keeps the sub-folders (a/b/c.wav -> a_b_c), so equal file names in two
    sub-folders stay two patterns. Raises CorpusError for two folders of one speaker id."""
    jobs, speakers = [], set()
    for path in audio_files(corpus_root):
        relative = os.path.relpath(path, corpus_root).split(os.sep)
        if len(relative) < 2:        # a file directly in the corpus folder has no speaker
            continue
        stem = '_'.join(relative[1:-1] + [_stem(path)])
        speakers.add(relative[0])
        jobs.append(Job(path, tag, patterns.speaker_id(relative[0]), _pattern_file(tag, relative[0], stem), root))
    check_distinct_speakers(speakers, f'-folder {corpus_root}', 'folder')
    return jobs


def _table(path: str, report, fields: int, exact: bool = True):
    """(line number, fields) of a Kaldi table; blank lines skipped, short (or long) lines reported.
    With exact=False the last field takes the rest of the line (wav.scp's path may hold spaces)."""
    with open(path, encoding='utf-8', errors='replace') as stream:
        for number, line in enumerate(stream, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(None, fields - 1) if not exact else line.split()
            if len(parts) != fields:
                report(f'{path}:{number}', f'malformed: expected {fields} fields, found {len(parts)}')
                continue
            yield number, parts


def _resolve(location: str, data_dir: str):
    """A wav.scp path: absolute as it is; relative against the current folder, then the data
    directory's parent (the corpus root, as in speechocean762). None when neither exists."""
    if os.path.isabs(location):
        return location if os.path.exists(location) else None
    for base in (os.getcwd(), os.path.dirname(os.path.abspath(data_dir))):
        candidate = os.path.join(base, location)
        if os.path.exists(candidate):
            return candidate
    return None


def _read_wav_scp(data_dir: str, report) -> dict:
    """recording id -> audio path. A piped entry ('... |') is a shell command and is refused,
    never run; a missing file is reported by line."""
    scp = os.path.join(data_dir, 'wav.scp')
    recordings = {}
    for number, (recording, location) in _table(scp, report, 2, exact=False):
        location = location.strip()
        if location.endswith('|') or location.startswith('|'):
            report(f'{scp}:{number}', f'{recording} is a shell command ({location}), which is never run: decode '
                                      f'the audio to files first (e.g. flac -d or sox) and list their paths in wav.scp')
            continue
        path = _resolve(location, data_dir)
        if path is None:
            report(f'{scp}:{number}', f'{recording}: no such file: {location} (relative paths are tried against '
                                      f'the current folder, then {os.path.dirname(os.path.abspath(data_dir))})')
            continue
        recordings[recording] = path
    return recordings


def _read_segments(path: str, recordings: dict, report) -> dict:
    """utterance id -> (recording path, start, end) of a Kaldi segments file."""
    segments = {}
    for number, (utterance, recording, start, end) in _table(path, report, 4):
        try:
            start, end = float(start), float(end)
        except ValueError:
            report(f'{path}:{number}', f'malformed: start and end must be seconds, not {start!r} {end!r}')
            continue
        if not 0 <= start < end:
            report(f'{path}:{number}', f'malformed: {utterance} ends ({end:g} s) before it starts ({start:g} s)')
        elif recording not in recordings:
            report(f'{path}:{number}', f'{utterance}: recording {recording} has no usable wav.scp entry')
        else:
            segments[utterance] = (recordings[recording], start, end)
    return segments


def kaldi_jobs(data_dir: str, tag: str, root: str, report) -> list:
    """A Kaldi data directory: wav.scp and utt2spk, and segments when present. Raises CorpusError
    when wav.scp or utt2spk is missing; entries that name a missing file or an unknown utterance
    are reported by line and skipped."""
    for needed in ('wav.scp', 'utt2spk', 'segments'):
        path = os.path.join(data_dir, needed)
        if not os.path.lexists(path) and needed != 'segments':
            raise CorpusError(f'{data_dir}: no {needed}: a Kaldi data directory needs wav.scp (utterance-id path) '
                              f'and utt2spk (utterance-id speaker-id)')
        if os.path.lexists(path) and file_kinds.problem(path) is not None:
            raise CorpusError(f'{path}: {file_kinds.problem(path)}; a Kaldi list is a text file')
    recordings = _read_wav_scp(data_dir, report)
    segments_file = os.path.join(data_dir, 'segments')
    if os.path.isfile(segments_file):
        utterances = _read_segments(segments_file, recordings, report)
    else:
        utterances = {utterance: (path, None, None) for utterance, path in recordings.items()}
    utt2spk = os.path.join(data_dir, 'utt2spk')
    jobs, seen, speakers = [], set(), set()
    for number, (utterance, speaker) in _table(utt2spk, report, 2):
        if utterance in seen:
            report(f'{utt2spk}:{number}', f'{utterance} is listed twice; the first line is kept')
            continue
        seen.add(utterance)
        if utterance not in utterances:
            report(f'{utt2spk}:{number}', f'{utterance}: not in {"segments" if os.path.isfile(segments_file) else "wav.scp"} '
                                          f'(or its entry was skipped)')
            continue
        path, start, end = utterances[utterance]
        speakers.add(speaker)
        jobs.append(Job(path, tag, patterns.speaker_id(speaker), _pattern_file(tag, speaker, utterance), root, start, end))
    for utterance in sorted(set(utterances) - seen):
        report(f'{utt2spk}', f'{utterance}: no speaker (not in utt2spk): skipped')
    check_distinct_speakers(speakers, f'-kaldi {data_dir}', 'speaker id in utt2spk')
    return sorted(jobs, key=lambda job: job.pattern_file)
