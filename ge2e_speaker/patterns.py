"""The pattern store: pattern pickles, their write records and METADATA.PICKLE (SPEC section 2).

A pattern is a pickle (protocol 4) of {'Mel': float32 [frames, Mel_Dim], 'Speaker': str,
'Dataset': str} at <root>/<Dataset>/<name>.PICKLE. Pickles are data: every reader here loads
them with `load_pickle`, which admits only dicts, lists, tuples, strings, numbers and numpy
arrays, so a crafted file cannot run code.
"""
import fcntl
import glob
import io
import os
import pickle
import socket
from collections import defaultdict

import numpy as np
from tqdm import tqdm

from . import file_kinds
from .atomic_files import write_atomically

PICKLE_PROTOCOL = 4
PATTERN_SUFFIX = '.PICKLE'
RECORDS_FOLDER = '.records'
LOCK_FILE = '.lock'
SOUND_KEYS = ('Spectrogram_Dim', 'Mel_Dim', 'Frame_Shift', 'Frame_Length', 'Sample_Rate', 'Max_Abs_Mel')

_ALLOWED_GLOBALS = {
    ('numpy', 'ndarray'), ('numpy', 'dtype'),
    ('numpy.core.multiarray', '_reconstruct'), ('numpy._core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'), ('numpy._core.multiarray', 'scalar'),
    ('_codecs', 'encode'),   # how protocol-2 pickles spell bytes
}


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for something a pattern or metadata file never contains."""


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module.startswith('numpy') and name.endswith('DType'):   # numpy >= 1.25 dtype classes
            return super().find_class(module, name)
        raise UnsafePickleError(f'refused {module}.{name}: pattern and metadata pickles hold data only')


def load_pickle(path: str):
    """Load a pattern or metadata pickle without running anything it names.

    Raises UnsafePickleError (a forbidden class) or pickle.UnpicklingError (a damaged file),
    both naming the file; a path that is not a regular file is refused without being opened.
    """
    if file_kinds.problem(path) is not None:
        raise pickle.UnpicklingError(f'{path}: {file_kinds.problem(path)}')
    with open(path, 'rb') as stream:
        data = stream.read()
    try:
        return _DataOnlyUnpickler(io.BytesIO(data)).load()
    except UnsafePickleError as error:
        raise UnsafePickleError(f'{path}: {error}') from None
    except Exception as error:   # truncated or not a pickle at all
        raise pickle.UnpicklingError(f'{path}: not a readable pickle ({type(error).__name__}: {error})') from None


def speaker_id(name: str) -> str:
    """The speaker id that a pattern's name and 'Speaker' hold: the seed's upper-cased name, with
    '.' (the name's separator) written as '_'. Two names may give one id: corpora.py refuses them."""
    return name.upper().replace('.', '_')


def pattern_name(dataset: str, speaker: str, stem: str, video: str = None) -> str:
    """<Dataset>.<Speaker>[.<video>].<stem>.PICKLE, the seed's naming (speaker_id of the speaker)."""
    parts = [dataset, speaker_id(speaker)] + ([video] if video else []) + [stem]
    return '.'.join(parts) + PATTERN_SUFFIX


def pattern_key(file: str, dataset: str) -> str:
    """'<Dataset>/<name>.PICKLE', relative to the root, of a metadata entry: this project's
    metadata lists it so, the seed's lists bare names."""
    return file if '/' in file else f'{dataset}/{file}'


def pattern_bytes(mel: np.ndarray, speaker: str, dataset: str) -> bytes:
    return pickle.dumps({'Mel': mel.astype(np.float32, copy=False), 'Speaker': speaker_id(speaker), 'Dataset': dataset},
                        protocol=PICKLE_PROTOCOL)


class RecordWriter:
    """Appends one line (file, dataset, speaker, frames, bytes, mtime_ns) per written pattern,
    so that the metadata build never has to re-open patterns. One file per process: no locking
    needed. The pattern's size and modification time tie the line to the bytes it describes."""

    def __init__(self, root: str):
        folder = os.path.join(root, RECORDS_FOLDER)
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, f'{socket.gethostname()}-{os.getpid()}.tsv')
        self._stream = open(self.path, 'a', encoding='utf-8', buffering=1)

    def add(self, relative_file: str, dataset: str, speaker: str, frames: int, written: os.stat_result) -> None:
        """written: the pattern file's status as write_atomically returned it."""
        self._stream.write(f'{relative_file}\t{dataset}\t{speaker}\t{frames}\t{written.st_size}\t{written.st_mtime_ns}\n')

    def close(self) -> None:
        self._stream.close()


class RootLock:
    """<root>/.lock (fcntl.flock), held by every run that writes patterns under root.

    Runs that write patterns share it, so shards and concurrent runs proceed; removing
    temporaries or rebuilding the metadata alone takes it exclusively, which proves that no
    other run is half-way through a file. The OS releases it when the process ends, however it ends.
    """

    def __init__(self, root: str):
        os.makedirs(root, exist_ok=True)
        self.path = os.path.join(root, LOCK_FILE)
        self._stream = open(self.path, 'a')

    def exclusive(self) -> bool:
        """Take the lock alone if no other run holds it; False if one does."""
        try:
            fcntl.flock(self._stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def share(self, log=print) -> None:
        """Hold the lock with other writers (waits while one holds it alone)."""
        try:
            fcntl.flock(self._stream, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f'{self.path}: another Pattern_Generate run holds this alone (a --metadata or a clean-up); waiting for it')
            fcntl.flock(self._stream, fcntl.LOCK_SH)

    def release(self) -> None:
        self._stream.close()


def read_records(root: str) -> dict:
    """{relative file: (dataset, speaker, frames, bytes, mtime_ns)} from the record files under root.

    Files are read oldest first (by modification time) and lines in order, so the newest record
    of a pattern wins. A line cut short by a kill, or of the older 4-field format, is ignored
    (its pattern is then opened by the metadata build).
    """
    def age(path):
        return os.stat(path).st_mtime_ns, path

    records = {}
    for path in sorted(glob.glob(os.path.join(root, RECORDS_FOLDER, '*.tsv')), key=age):
        with open(path, encoding='utf-8', errors='replace') as stream:
            for line in stream:
                fields = line.rstrip('\n').split('\t')
                if len(fields) == 6 and line.endswith('\n') and all(field.isdigit() for field in fields[3:]):
                    records[fields[0]] = (fields[1], fields[2], *map(int, fields[3:]))
    return records


def list_patterns(root: str) -> list:
    """Relative paths '<Dataset>/<name>.PICKLE' of every finished pattern under root, sorted."""
    found = []
    with os.scandir(root) as entries:
        for folder in entries:
            if not folder.is_dir() or folder.name.startswith('.'):
                continue
            with os.scandir(folder.path) as files:
                found.extend(f'{folder.name}/{entry.name}' for entry in files
                             if entry.name.endswith(PATTERN_SUFFIX) and entry.is_file())
    return sorted(found)


class MalformedPattern(ValueError):
    """A pattern pickle that loads but is not {'Mel': [frames, Mel_Dim], 'Speaker': str, 'Dataset': str}."""


def pattern_facts(pattern, mel_dim: int) -> tuple:
    """(dataset, speaker, frames) of a loaded pattern; MalformedPattern says what is wrong."""
    if not isinstance(pattern, dict) or not {'Mel', 'Speaker', 'Dataset'} <= set(pattern):
        raise MalformedPattern("expected a dict with 'Mel', 'Speaker' and 'Dataset'")
    mel = pattern['Mel']
    if not isinstance(mel, np.ndarray) or mel.ndim != 2 or mel.shape[0] == 0 or mel.shape[1] != mel_dim:
        shape = list(mel.shape) if isinstance(mel, np.ndarray) else type(mel).__name__
        raise MalformedPattern(f'Mel is {shape}; expected [frames >= 1, {mel_dim}] (Sound.Mel_Dim)')
    if not isinstance(pattern['Speaker'], str) or not isinstance(pattern['Dataset'], str):
        raise MalformedPattern('Speaker and Dataset are not text')
    return pattern['Dataset'], pattern['Speaker'], mel.shape[0]


def _current_facts(root: str, files: list, records: dict) -> tuple:
    """({file: (dataset, speaker, frames)} of files whose newest record matches the file on disk
    (size and mtime), [files to open]): a file rewritten since its record is opened again."""
    facts, to_open = {}, []
    for file in files:
        record = records.get(file)
        try:
            status = os.stat(os.path.join(root, file))
        except FileNotFoundError:   # removed meanwhile
            continue
        if record is not None and record[3:] == (status.st_size, status.st_mtime_ns):
            facts[file] = record[:3]
        else:
            to_open.append(file)
    return facts, to_open


def build_metadata(root: str, sound_hp, metadata_file: str = 'METADATA.PICKLE', log=print) -> dict:
    """Build <root>/<metadata_file> from the patterns on disk, in the seed's layout.

    Facts come from the write records where they still describe the file on disk; any other
    pattern (made by the seed or another tool, or rewritten) is opened once. Unreadable patterns
    and patterns whose Mel is not [frames, Mel_Dim] are named and left out. Returns the metadata.
    """
    files = list_patterns(root)
    facts, to_open = _current_facts(root, files, read_records(root))
    left_out = 0
    for file in tqdm(to_open, desc='Scanning unrecorded patterns', unit='file', disable=not to_open):
        try:
            facts[file] = pattern_facts(load_pickle(os.path.join(root, file)), sound_hp.Mel_Dim)
        except (pickle.UnpicklingError, MalformedPattern, OSError) as error:
            log(f'{os.path.join(root, file)}: left out of the metadata: {error}')
            left_out += 1
    metadata = {key: getattr(sound_hp, key) for key in SOUND_KEYS}
    metadata.update({'File_List': [], 'Mel_Length_Dict': {}, 'Dataset_Dict': {}, 'Speaker_Dict': {},
                     'File_List_by_Speaker_Dict': defaultdict(list)})
    for file in files:
        if file not in facts:
            continue
        dataset, speaker, frames = facts[file]
        metadata['File_List'].append(file)
        metadata['Mel_Length_Dict'][file] = frames
        metadata['Dataset_Dict'][file] = dataset
        metadata['Speaker_Dict'][file] = speaker
        metadata['File_List_by_Speaker_Dict'][(dataset, speaker)].append(file)
    metadata['File_List_by_Speaker_Dict'] = dict(metadata['File_List_by_Speaker_Dict'])
    write_atomically(os.path.join(root, metadata_file), pickle.dumps(metadata, protocol=PICKLE_PROTOCOL))
    log(f'{os.path.join(root, metadata_file)}: {len(metadata["File_List"])} patterns of '
        f'{len(metadata["File_List_by_Speaker_Dict"])} speakers'
        + (f' ({left_out} unreadable or malformed patterns left out)' if left_out else ''))
    return metadata


class MetadataError(ValueError):
    """The metadata file is missing, unreadable or made with other sound settings."""


def load_metadata(root: str, metadata_file: str, sound_hp=None) -> dict:
    """Read <root>/<metadata_file>; with sound_hp, check it was made with the same sound settings."""
    path = os.path.join(root, metadata_file)
    if not os.path.isfile(path):
        raise MetadataError(f'{path}: no metadata file. Generate patterns with Pattern_Generate.py, '
                            f'or rebuild the metadata with: python Pattern_Generate.py --metadata')
    try:
        metadata = load_pickle(path)
    except pickle.UnpicklingError as error:
        raise MetadataError(f'{error}. Rebuild it with: python Pattern_Generate.py --metadata') from None
    if sound_hp is not None:
        for key in SOUND_KEYS:
            if key in metadata and metadata[key] != getattr(sound_hp, key):
                raise MetadataError(f'{path}: patterns were made with Sound.{key} = {metadata[key]}, '
                                    f'the hyper-parameter file says {getattr(sound_hp, key)}; '
                                    f'regenerate the patterns or use the matching file')
    return metadata
