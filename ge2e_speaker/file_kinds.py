"""What a path is, found without opening it.

Opening a named pipe blocks until a writer comes, a terminal waits for typing and a character
device such as /dev/zero never ends, so every reader of the project (audio, lists, pickles,
checkpoints, YAML) asks `problem(path)` before it opens anything.
"""
import os
import stat

SPECIAL_KINDS = ((stat.S_ISFIFO, 'a named pipe (FIFO)'), (stat.S_ISSOCK, 'a socket'),
                 (stat.S_ISCHR, 'a character device'), (stat.S_ISBLK, 'a block device'),
                 (stat.S_ISDIR, 'a folder'))
NOT_REGULAR = 'not a regular file'


def problem(path: str):
    """None for a regular file or a link to one; otherwise one phrase for the user: 'missing: no
    such file', 'not a regular file: a named pipe (FIFO), never opened', 'a broken symbolic
    link', ... (its text up to the first colon is the reason a summary counts)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return 'missing: a broken symbolic link' if os.path.islink(path) else 'missing: no such file'
    except OSError as error:        # permission, a link loop, a name too long
        return f'unreadable: {error.strerror}'
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in SPECIAL_KINDS if test(mode)), 'a special file')
    linked = ' behind a symbolic link' if os.path.islink(path) else ''
    return f'{NOT_REGULAR}: {kind}{linked}, never opened'
