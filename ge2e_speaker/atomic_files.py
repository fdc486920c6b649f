"""Whole files or none: write under a temporary name, then rename; a set of files that replaces
another set whole; a probe that a folder takes files; and the cleanup of what a killed run
half-wrote; a file's sha256. Imports nothing of the project."""
import glob
import hashlib
import os
import re
import shutil

TEMPORARY_NAME = re.compile(r'\.tmp-\d+$')          # write_atomically's <name>.tmp-<pid>
STAGING_PREFIX = '.partial-'                          # OutputSet's <folder>/.partial-<pid>/


def file_digest(path: str) -> str:
    """sha256 of a file's bytes (hex), read a MiB at a time: tells two versions of a file apart."""
    digest = hashlib.sha256()
    with open(path, 'rb') as stream:
        for block in iter(lambda: stream.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def write_atomically(path: str, payload) -> os.stat_result:
    """Write bytes (or text, as UTF-8) under a temporary name, then rename, making the folders:
    a killed run never leaves a truncated file, and a failed write (a full disk) leaves none.
    Returns the written file's status (size, modification time), read before the rename, so that
    it describes these bytes."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    temporary = f'{path}.tmp-{os.getpid()}'
    try:
        with open(temporary, 'wb') as stream:
            stream.write(payload.encode('utf-8') if isinstance(payload, str) else payload)
            stream.flush()
            status = os.fstat(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
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


def folder_problem(folder: str, probe_bytes: int = 65536):
    """Why files cannot be written in folder (made when missing), as one line, or None. A probe
    file of probe_bytes is written, renamed and removed: a read-only, full or forbidden folder, and
    a path that is a file, are found before any work is done."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        return f'{folder}: is a file, not a folder'
    probe = os.path.join(folder, f'.probe.tmp-{os.getpid()}')
    try:
        os.makedirs(folder, exist_ok=True)
        write_atomically(probe, bytes(probe_bytes))
        os.remove(probe)
    except OSError as error:
        return f'{folder}: cannot write files there ({error.strerror or error})'
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class OutputSet:
    """Files that belong together (one run's outputs) replace the earlier set in `folder` whole:
    they are written in <folder>/.partial-<pid>/ (`path(name)`), and `publish(names)` removes
    every file of `names` in folder, then moves the new ones in. A run that fails or is
    interrupted before publish leaves the earlier set as it was; a killed run's staging folder is
    removed by the next run."""

    def __init__(self, folder: str):
        self.folder = folder
        for stale in glob.glob(os.path.join(glob.escape(folder), STAGING_PREFIX + '*')):
            pid = stale.rsplit('-', 1)[-1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)
        self.staging = os.path.join(folder, f'{STAGING_PREFIX}{os.getpid()}')
        shutil.rmtree(self.staging, ignore_errors=True)
        os.makedirs(self.staging)

    def path(self, name: str) -> str:
        return os.path.join(self.staging, name)

    def publish(self, names) -> list:
        """Replace the set: every file of `names` in folder is removed, then the new ones (those
        written) are moved in. Returns the names moved in."""
        for name in names:
            if os.path.isfile(os.path.join(self.folder, name)):
                os.remove(os.path.join(self.folder, name))
        written = [name for name in names if os.path.isfile(self.path(name))]
        for name in written:
            os.replace(self.path(name), os.path.join(self.folder, name))
        self.discard()
        return written

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def _size(count: int) -> str:
    return f'{count / 1e9:.1f} GB' if count >= 1e9 else f'{count / 1e6:.1f} MB' if count >= 1e6 else f'{count / 1e3:.0f} kB'


def space_note(folder: str, needed_bytes: int = None) -> str:
    """'<free> free there[, about <needed> needed]': what a message about a failed write says of space."""
    try:
        free = _size(shutil.disk_usage(folder).free) + ' free there'
    except OSError:
        free = 'its free space unknown'
    return free + (f', about {_size(needed_bytes)} needed' if needed_bytes else '')
