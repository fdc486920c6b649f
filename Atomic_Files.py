"""Whole files or none: write under a temporary name, then rename; and the cleanup of what a
killed run half-wrote. Imports nothing of the project."""
import glob
import os
import re

TEMPORARY_NAME = re.compile(r'\.tmp-\d+$')          # write_atomically's <name>.tmp-<pid>


def write_atomically(path: str, payload) -> os.stat_result:
    """Write bytes (or text, as UTF-8) under a temporary name, then rename, making the folders:
    a killed run never leaves a truncated file. Returns the written file's status (size,
    modification time), read before the rename, so that it describes these bytes."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    temporary = f'{path}.tmp-{os.getpid()}'
    with open(temporary, 'wb') as stream:
        stream.write(payload.encode('utf-8') if isinstance(payload, str) else payload)
        stream.flush()
        status = os.fstat(stream.fileno())
    os.replace(temporary, path)
    return status


def remove_temporaries(folder: str, names: str = '**/*') -> int:
    """Delete the half-written files (<name>.tmp-<pid>) that killed runs left in folder, of the
    names that the glob `names` matches below it ('**' spans sub-folders); returns how many.
    Only while no other process writes those files."""
    pattern = os.path.join(glob.escape(folder), names) + '.tmp-*'
    stale = [path for path in glob.glob(pattern, recursive=True) if TEMPORARY_NAME.search(path)]
    for path in stale:
        os.remove(path)
    return len(stale)
