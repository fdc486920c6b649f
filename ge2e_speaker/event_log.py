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
        self.thread = self.writer.file_writer.event_writer._worker
        self.failure = None
        previous_hook = threading.excepthook

        def keep_writer_failure(arguments):      # the writer thread's error: kept, not printed
            if arguments.thread is self.thread and isinstance(arguments.exc_value, OSError):
                self.failure = arguments.exc_value
            else:
                previous_hook(arguments)
        threading.excepthook = keep_writer_failure

    def _call(self, name: str, *arguments, **options):
        self.check()
        try:
            result = getattr(self.writer, name)(*arguments, **options)
        except OSError as error:                 # flush and add_embedding write in this thread
            self.failure = error
        self.check()
        return None if self.failure else result

    def check(self) -> None:
        """Raises EventLogError once a write has failed."""
        if self.failure is None and not self.thread.is_alive() and not self.writer.file_writer.event_writer._closed:
            self.failure = OSError('the TensorBoard writer stopped')
        if self.failure is not None:
            self.writer.file_writer.event_writer._closed = True     # its exit-time flush would fail again
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
        """Flushes and closes (nothing to do after a failure: the writer thread has stopped)."""
        if self.failure is None:
            self.writer.close()
