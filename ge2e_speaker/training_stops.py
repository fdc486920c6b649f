"""Why a training run stops early, and what it says: steps whose loss or gradient is not finite
(skipped, their non-finite patterns named, MAX_NONFINITE_IN_A_ROW in a row stop the run without
a checkpoint), unusable patterns (each named once, the run stops once most are bad), and the
errors a user can act on (a killed data-loading worker), for which Train.py saves a checkpoint
first and then prints one line."""
import torch

from . import datasets, runtime
from .checkpoints import list_checkpoints
from .event_log import EventLogError

MAX_NONFINITE_IN_A_ROW = 10


class TrainingError(RuntimeError):
    """Training cannot start or go on; the message says why and what to do."""


class NonFiniteStop(TrainingError):
    """Too many non-finite steps in a row: the weights may be going bad, so no checkpoint is saved."""


class UnusableData(TrainingError):
    """Most of the patterns drawn could not be used."""


class NonFiniteSteps:
    """The steps skipped for a non-finite loss or gradient: `skipped` in the run, `in_a_row` now."""

    def __init__(self, checkpoint_path: str, log):
        self.checkpoint_path, self.log = checkpoint_path, log
        self.skipped, self.in_a_row = 0, 0

    def skip(self, step: int, batch: datasets.TrainingBatch) -> None:
        """Count and log a skipped step, naming the batch's patterns whose crops are not finite;
        raises NonFiniteStop after MAX_NONFINITE_IN_A_ROW in a row."""
        self.skipped += 1
        self.in_a_row += 1
        finite = torch.isfinite(batch.mels).flatten(1).all(dim=1).tolist()      # [speakers * utterances]
        named = sorted({file for file, ok in zip(batch.files, finite) if not ok})
        inputs = (f'; non-finite values in {len(named)} of its patterns: {", ".join(named[:5])}'
                  + (' ...' if len(named) > 5 else '')) if named else '; its patterns are finite' if batch.files else ''
        self.log(f'Step {step + 1}: non-finite loss or gradient, step skipped '
                 f'({self.skipped} skipped in this run, {self.in_a_row} in a row){inputs}')
        if self.in_a_row >= MAX_NONFINITE_IN_A_ROW:
            last = ', '.join(f'S_{s}' for s in list_checkpoints(self.checkpoint_path)[-1:]) or 'none'
            raise NonFiniteStop(
                f'Stopped at step {step}: the loss was not finite in {self.in_a_row} steps in a row, so no '
                f'checkpoint was written. Resume from the last checkpoint ({last}) with a lower '
                f'Train.Learning_Rate.Initial, or check the patterns.')


class PatternProblems:
    """The unusable patterns of a run, as the batches report them: each logged once, by name; a
    run stops (UnusableData) once most patterns drawn, and at least MIN_TO_STOP, were
    unusable."""
    MIN_TO_STOP = 10

    def __init__(self, root: str, log):
        self.root, self.log = root, log
        self.reasons, self.drawn, self.unusable_draws = {}, 0, 0

    def add(self, batch: datasets.TrainingBatch) -> None:
        for file, reason in batch.problems:
            if file not in self.reasons:
                self.reasons[file] = reason
                self.log(f'Skipped a pattern: {reason} ({len(self.reasons)} unusable so far)')
        self.drawn += len(batch.files) + len(batch.problems)
        self.unusable_draws += len(batch.problems)
        if self.unusable_draws >= self.MIN_TO_STOP and 2 * self.unusable_draws > self.drawn:
            raise UnusableData(
                f'{self.root}: {self.unusable_draws} of the {self.drawn} patterns drawn were unusable '
                f'({len(self.reasons)} files, e.g. {next(iter(self.reasons.values()))}): most of the training data '
                f'is bad; regenerate the patterns (python Pattern_Generate.py ..., then --metadata)')


def stop_cause(error: Exception):
    """One line for an error that stops a run and that the user can act on (a data-loading worker
    killed, most patterns unusable, ...), else None (a bug: its traceback is shown)."""
    if isinstance(error, (TrainingError, datasets.DatasetConfigurationError, EventLogError)):
        return str(error)
    return runtime.worker_death(error)
