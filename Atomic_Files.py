"""Whole files or none: write under a temporary name, then rename (imports nothing of the project)."""
import os


def write_atomically(path: str, payload: bytes) -> os.stat_result:
    """Write payload to path so that a killed run never leaves a truncated file there.

    Returns the written file's status (size, modification time), read before the rename,
    so that it describes these bytes even if another process replaces path afterwards.
    """
    temporary = f'{path}.tmp-{os.getpid()}'
    with open(temporary, 'wb') as stream:
        stream.write(payload)
        stream.flush()
        status = os.fstat(stream.fileno())
    os.replace(temporary, path)
    return status
