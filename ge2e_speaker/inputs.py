"""What Inference.py embeds: a folder, a list file or one audio file -> (paths, labels)."""
import os

from . import file_kinds
from .audio import AUDIO_EXTENSIONS, audio_files, shown

UNLABELLED = ''


class InputError(ValueError):
    """An input that names no audio; str is one line."""


def read_input(source: str, log=print) -> tuple[list, list]:
    """INPUT -> (paths, labels).

    A folder: every audio file below it, sorted, labelled by the first folder below INPUT
    (wav48/p225/x.wav -> p225; vox1/id10270/<video>/00001.wav -> id10270); files directly in
    INPUT take INPUT's own folder name. A list file: 'path label' per line (or 'path<TAB>label';
    the label is optional), relative paths taken from the current folder, or from the list's
    folder when not found there; UTF-8 text (a byte-order mark allowed). A single audio file:
    itself, unlabelled. A file whose name is not UTF-8 (it could not be written to the index)
    gets one line through log and is left out; so does a symbolic-link loop (audio.audio_files).
    """
    if os.path.isdir(source):
        return _walk(source, log)
    if not os.path.exists(source):
        raise InputError(f'{source}: no such input file or folder')
    if source.lower().endswith(AUDIO_EXTENSIONS):        # decoding names any problem of the file
        return _utf8_names([source], [UNLABELLED], log)
    if file_kinds.problem(source) is not None:
        raise InputError(f'{source}: {file_kinds.problem(source)}; give a folder, an audio file or a list file')
    what_to_give = (f'give a folder, an audio file ({", ".join(AUDIO_EXTENSIONS)}) or a UTF-8 list, '
                    f'"path label" per line')
    with open(source, 'rb') as stream:
        data = stream.read()
    if b'\0' in data:
        raise InputError(f'{source}: not an audio file and not a list (it holds binary data); {what_to_give}')
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError:
        raise InputError(f'{source}: not UTF-8 text (a list in another encoding, such as Latin-1?); '
                         f'{what_to_give}') from None
    paths, labels = [], []
    base = os.path.dirname(source)
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith('#'):
            continue
        if '\t' in line:
            path, label = line.split('\t', 1)
        elif os.path.exists(line.strip()) or len(line.split()) == 1:
            path, label = line.strip(), UNLABELLED
        else:
            path, label = line.strip().rsplit(maxsplit=1)
        if not os.path.isabs(path) and not os.path.exists(path) and os.path.exists(os.path.join(base, path)):
            path = os.path.join(base, path)
        paths.append(path)
        labels.append(label.strip())
    if not paths:
        raise InputError(f'{source}: the list names no files')
    return paths, labels


def _walk(root: str, log) -> tuple[list, list]:
    """audio.audio_files below root, each labelled by its first folder below root (root's own
    name for the files directly in it)."""
    own_name = os.path.basename(os.path.normpath(os.path.abspath(root)))
    paths = audio_files(root, log)
    if not paths:
        raise InputError(f'{root}: no audio files ({", ".join(AUDIO_EXTENSIONS)}) below this folder')
    parts = (os.path.relpath(path, root).split(os.sep) for path in paths)
    return _utf8_names(paths, [folders[0] if len(folders) > 1 else own_name for folders in parts], log)


def _utf8_names(paths: list, labels: list, log) -> tuple[list, list]:
    """The paths (and their labels) whose names are UTF-8; one line for each other one."""
    kept = []
    for path, label in zip(paths, labels):
        try:
            path.encode('utf-8')
            kept.append((path, label))
        except UnicodeEncodeError:
            log(f'{shown(path)}: file name not UTF-8: left out; rename it to embed it')
    if not kept:
        raise InputError(f'{shown(paths[0])}: no file to embed (names not UTF-8)')
    return [path for path, _ in kept], [label for _, label in kept]
