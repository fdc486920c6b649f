"""TensorBoard logs that fail in one line: tensorboardX's SummaryWriter writes from a thread of its
own, which dies on a failed write (a full disk) with a traceback while the training loop's next
events fill its queue and block it for ever. EventLog checks that thread after every call and
raises EventLogError, in the loop's thread, instead."""
import os
import threading

from .atomic_files import space_note


class EventLogError(OSError):
    """The log folder takes no more events; str is one line naming it and its space."""


class EventLog:
    """The SummaryWriter calls the training uses (add_scalar, add_figure, add_embedding, flush,
    close) on hp.Log_Path, raising EventLogError once a write has failed."""

    QUEUE = 10_000       # events held for the writer thread: more than one check's worth, so a put never blocks

    def __init__(self, folder: str):
        from tensorboardX import SummaryWriter
        self.folder = folder
        self.writer = SummaryWriter(folder, max_queue=self.QUEUE)
        self.event_writer = self.writer.file_writer.event_writer     # tensorboardX's, with its thread
        self.thread = self.event_writer._worker
        self.failure = None
        self.previous_hook = threading.excepthook
        threading.excepthook = self.keep_writer_failure

    def keep_writer_failure(self, arguments) -> None:
        """threading.excepthook while this log is open: the writer thread's OSError is kept for
        check(), not printed; every other thread's error goes to the hook before."""
        if arguments.thread is self.thread and isinstance(arguments.exc_value, OSError):
            self.failure = arguments.exc_value
        else:
            self.previous_hook(arguments)

    def release_hook(self) -> None:
        if threading.excepthook == self.keep_writer_failure:
            threading.excepthook = self.previous_hook

    def _call(self, name: str, *arguments, **options):
        self.check()
        try:
            result = getattr(self.writer, name)(*arguments, **options)
        except OSError as error:                 # flush and add_embedding write in this thread
            self.failure = error
        self.check()
        return result

    def check(self) -> None:
        """Raises EventLogError once a write has failed."""
        if self.failure is None and not self.thread.is_alive() and not self.event_writer._closed:
            self.failure = OSError('the TensorBoard writer stopped')
        if self.failure is not None:
            self.event_writer._closed = True     # its exit-time flush would fail again
            self.release_hook()
            reason = self.failure.strerror or str(self.failure)
            raise EventLogError(f'{os.path.abspath(self.folder)}: TensorBoard events cannot be written ({reason}; '
                                f'{space_note(self.folder)})')

    def add_scalar(self, *arguments, **options):
        return self._call('add_scalar', *arguments, **options)

    def add_figure(self, *arguments, **options):
        return self._call('add_figure', *arguments, **options)

    def add_embedding(self, *arguments, **options):
        return self._call('add_embedding', *arguments, **options)

    def flush(self):
        return self._call('flush')

    def close(self):
        """Flushes and closes (nothing to write after a failure: the writer thread has stopped)."""
        self.release_hook()
        if self.failure is None:
            self.writer.close()
