"""What Inference.py embeds: a folder, a list file or one audio file -> (paths, labels)."""
import os

from Audio import AUDIO_EXTENSIONS, audio_files

UNLABELLED = ''


class InputError(ValueError):
    """An input that names no audio; str is one line."""


def read_input(source: str) -> tuple[list, list]:
    """INPUT -> (paths, labels).

    A folder: every audio file below it, sorted, labelled by the first folder below INPUT
    (wav48/p225/x.wav -> p225; vox1/id10270/<video>/00001.wav -> id10270); files directly in
    INPUT take INPUT's own folder name. A list file: 'path label' per line (or 'path<TAB>label';
    the label is optional), relative paths taken from the current folder, or from the list's
    folder when not found there. A single audio file: itself, unlabelled.
    """
    if os.path.isdir(source):
        return _walk(source)
    if not os.path.isfile(source):
        raise InputError(f'{source}: no such input file or folder')
    if source.lower().endswith(AUDIO_EXTENSIONS):
        return [source], [UNLABELLED]
    paths, labels = [], []
    base = os.path.dirname(source)
    with open(source, encoding='utf-8') as stream:
        for line in stream:
            line = line.rstrip('\r\n')
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


def _walk(root: str) -> tuple[list, list]:
    """Audio.audio_files below root, each labelled by its first folder below root (root's own
    name for the files directly in it)."""
    own_name = os.path.basename(os.path.normpath(os.path.abspath(root)))
    paths = audio_files(root)
    if not paths:
        raise InputError(f'{root}: no audio files ({", ".join(AUDIO_EXTENSIONS)}) below this folder')
    parts = (os.path.relpath(path, root).split(os.sep) for path in paths)
    return paths, [folders[0] if len(folders) > 1 else own_name for folders in parts]
