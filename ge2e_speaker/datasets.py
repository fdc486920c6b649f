"""Speaker x utterance batches for GE2E training and evaluation (SPEC section 4).

One dataset item is one speaker: `utterances` of its patterns, drawn without replacement.
A batch of items becomes one mel tensor [speakers * utterances, mel_dim, frames] with one frame
length for the whole batch, every utterance cropped at a random offset or, when shorter,
padded symmetrically by reflection (slicing.crop_or_pad).

Everything is configured by arguments (Train.py reads the hyper-parameter file once). Without
the pattern cache, a dataset holds only its speakers' file names, in two numpy arrays: forked
DataLoader workers share them without copying (a list of a million Python strings would be
copied page by page into every worker as reference counts change).

With a current packed store (pattern_store.py) an utterance is a view of a memory-mapped array
instead of an unpickled file: the collaters' crops then read only the frames they keep. The
random draws are the same either way, so a seeded run makes the same batches from both.

A pattern that cannot be used (unreadable, not a pattern, a Mel that is not finite float
[frames, mel_dim]) is reported by name in the batch it was drawn for and replaced by another of
its speaker's patterns; the trainer counts them (training_stops.PatternProblems).
"""
import itertools
import os
import pickle
import signal
from typing import NamedTuple

import numpy as np
import torch

from . import pattern_store, runtime, slicing
from .patterns import load_metadata, load_pickle, pattern_key


class DatasetConfigurationError(ValueError):
    """The patterns cannot make the batches the hyper-parameters ask for."""


class UnusablePattern(ValueError):
    """A pattern file that cannot be used; str names it and says why."""


class TrainingBatch(NamedTuple):
    """A training batch: mels [speakers * utterances, mel_dim, frames] (None when fewer than two
    speakers had usable patterns), the pattern of each row ('<Dataset>/<name>.PICKLE'), and
    (pattern, reason) of each unusable pattern met while drawing it."""
    mels: torch.Tensor
    files: list
    problems: list


class WorkerRandom:
    """A numpy generator per process: seeded from torch's seed of the DataLoader worker (or of
    the main process without workers), so that every worker draws its own stream (the seed's
    numpy crops could repeat across workers) and a run seeded with torch.manual_seed repeats."""

    def __init__(self, stream: int):
        self.stream = stream
        self._key, self._generator = None, None

    def generator(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        key = (os.getpid(), info.seed if info is not None else torch.initial_seed())
        if key != self._key:
            self._key, self._generator = key, np.random.default_rng([self.stream, key[1]])
        return self._generator


def pattern_path(root: str, file: str, dataset: str) -> str:
    return os.path.join(root, pattern_key(file, dataset))


class SpeakerDataset(torch.utils.data.Dataset):
    """Item i: (i, [utterances mels, float32 [frames, mel_dim]], [their patterns], [(pattern,
    reason) of unusable ones met]) of the i-th usable speaker.

    Speakers with fewer than `utterances` patterns are left out (counted in `left_out`). An
    unusable pattern is replaced by another of the speaker's; when too few are usable, usable
    ones repeat; when none is, the item has no mels.
    With `fixed_seed`, item i always draws the same patterns (for comparable evaluations);
    otherwise each draw is random (WorkerRandom). With `store` (a current pattern_store.PackedStore
    of root), mels are read-only views of its maps.
    """

    def __init__(self, root: str, metadata: dict, utterances: int, use_cache: bool = False, fixed_seed: int = None,
                 store: pattern_store.PackedStore = None, mel_dim: int = None):
        self.root, self.mel_dim = root, mel_dim
        self.utterances = utterances
        self.use_cache = use_cache
        self.fixed_seed = fixed_seed
        by_speaker = metadata['File_List_by_Speaker_Dict']
        keys = sorted(key for key, files in by_speaker.items() if len(files) >= utterances)
        self.left_out = len(by_speaker) - len(keys)
        self.speakers = keys                                            # [(dataset, speaker)]
        counts = np.array([len(by_speaker[key]) for key in keys], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)])          # speaker i: files[starts[i]:starts[i + 1]]
        self.files = np.array([file.encode() for key in keys for file in by_speaker[key]], dtype=np.bytes_)
        self.store = store
        if store is not None:                                           # file i: store row rows[i]
            self.rows = store.locate([pattern_key(file, key[0]) for key in keys for file in by_speaker[key]])
        self.random = WorkerRandom(stream=0)
        self.cache = {}
        self.unusable = {}                                              # file index -> reason, in this process

    def __len__(self) -> int:
        return len(self.speakers)

    def label(self, index: int) -> str:
        """'dataset.speaker', as in the seed's t-SNE legends."""
        return '.'.join(self.speakers[index])

    def __getitem__(self, index: int):
        generator = np.random.default_rng([self.fixed_seed, index]) if self.fixed_seed is not None else self.random.generator()
        chosen = self.choose(index, generator)
        dataset = self.speakers[index][0]
        mels, files, problems = [], [], []
        for file_index in itertools.chain(chosen, self._spares(generator, index, chosen)):
            file = pattern_key(self.files[file_index].decode(), dataset)
            try:
                mels.append(self._load(int(file_index), dataset))
                files.append(file)
            except Exception as error:          # whatever the file holds, it is this file's problem
                self.unusable[file_index] = self.unusable.get(file_index) or _reason(error, self.root, file)
                problems.append((file, self.unusable[file_index]))
            if len(mels) == self.utterances:
                break
        if mels and len(mels) < self.utterances:                        # too few usable: repeat them
            repeat = [position % len(mels) for position in range(self.utterances)]
            mels, files = [mels[position] for position in repeat], [files[position] for position in repeat]
        return index, mels, files, problems

    def choose(self, index: int, generator: np.random.Generator) -> np.ndarray:
        """File indices [utterances] (int64) of speaker `index`, drawn without replacement."""
        start, stop = self.starts[index], self.starts[index + 1]
        return start + generator.choice(stop - start, size=self.utterances, replace=False)

    def _spares(self, generator, index: int, chosen: np.ndarray):
        """The speaker's other patterns in random order, drawn only when a chosen one is unusable."""
        start, stop = self.starts[index], self.starts[index + 1]
        taken = set(chosen.tolist())
        yield from (start + offset for offset in generator.permutation(stop - start) if start + offset not in taken)

    def _load(self, file_index: int, dataset: str) -> np.ndarray:
        if file_index in self.unusable:
            raise UnusablePattern(self.unusable[file_index])
        if self.store is not None:
            return self.store.mel(self.rows[file_index])
        if file_index in self.cache:
            return self.cache[file_index]
        path = pattern_path(self.root, self.files[file_index].decode(), dataset)
        pattern = load_pickle(path)
        mel = pattern.get('Mel') if isinstance(pattern, dict) else None
        if not isinstance(mel, np.ndarray) or mel.ndim != 2 or mel.dtype.kind != 'f' \
                or (self.mel_dim is not None and mel.shape[1] != self.mel_dim) or not len(mel):
            shape = list(mel.shape) if isinstance(mel, np.ndarray) else type(mel).__name__
            raise UnusablePattern(f'{path}: not a pattern: its Mel is {shape}, not float [frames, '
                                  f'{self.mel_dim or "mel_dim"}]')
        if not np.isfinite(mel).all():
            raise UnusablePattern(f'{path}: its Mel holds NaN or infinite values')
        if self.use_cache:
            self.cache[file_index] = mel
        return mel


def _reason(error: Exception, root: str, file: str) -> str:
    """One line naming the pattern: the project's errors name it already."""
    if isinstance(error, OSError):
        return f'{os.path.join(root, file)}: cannot be read ({error.strerror or error})'
    if isinstance(error, (UnusablePattern, pickle.UnpicklingError)):
        return str(error)                                               # names the file already
    return f'{os.path.join(root, file)}: {type(error).__name__}: {error}'


def load_speaker_dataset(pattern_hp, sound_hp, utterances: int, use_cache: bool, fixed_seed: int = None,
                         use_store: bool = False, log=print):
    """A SpeakerDataset of a pattern root (Train.Train_Pattern or Train.Eval_Pattern), reading its
    packed store when use_store and the store is current (an out-of-date one is reported and left
    alone). Raises patterns.MetadataError with a how-to when the metadata is missing or mismatched."""
    metadata = load_metadata(pattern_hp.Path, pattern_hp.Metadata_File, sound_hp)
    store = None
    if use_store:
        store, reason = pattern_store.open_store(pattern_hp.Path, pattern_hp.Metadata_File)
        if reason:
            log(f'{reason}. Reading the pattern pickles meanwhile.')
    return SpeakerDataset(pattern_hp.Path, metadata, utterances, use_cache, fixed_seed, store, sound_hp.Mel_Dim)


def check_enough_speakers(dataset: SpeakerDataset, speakers_per_batch: int, processes: int = 1,
                          batch_key: str = 'Train.Batch.Train') -> None:
    """Stop with a how-to when the usable speakers cannot fill one batch in every process."""
    needed = speakers_per_batch * processes
    if len(dataset) >= needed:
        return
    per_process = f' x {processes} processes' if processes > 1 else ''
    raise DatasetConfigurationError(
        f'{dataset.root}: {len(dataset)} speakers have at least {dataset.utterances} patterns '
        f'({batch_key}.Pattern_per_Speaker; {dataset.left_out} with fewer are left out), but a batch takes '
        f'{speakers_per_batch}{per_process} speakers ({batch_key}.Speaker). Set {batch_key}.Speaker to '
        f'{max(len(dataset) // processes, 0)} or less, lower {batch_key}.Pattern_per_Speaker, or add patterns.')


def _frame_major(crops: list, length: int, mel_dim: int) -> torch.Tensor:
    """[batch] crops [length, mel_dim] -> mels [batch, mel_dim, length], a view of frame-major
    memory [length, batch, mel_dim]: the layout the encoder's LSTMs read, so no copy later.
    In a DataLoader worker the memory is shared from the start (as torch's default_collate
    does), so the batch reaches the trainer without a copy."""
    shape = (length, len(crops), mel_dim)
    if torch.utils.data.get_worker_info() is None:
        buffer = torch.empty(shape)
    else:
        storage = torch.empty(0)._typed_storage()._new_shared(length * len(crops) * mel_dim)
        buffer = torch.empty(0).new(storage).view(shape)
    frames = buffer.numpy()
    for index, crop in enumerate(crops):
        frames[:, index] = crop
    return buffer.permute(1, 2, 0)


class TrainCollater:
    """[(index, mels)] x speakers -> mels [speakers * utterances, mel_dim, frames], speaker-major,
    with one frame length per batch drawn uniformly from [min_frames, max_frames]."""

    def __init__(self, min_frames: int, max_frames: int):
        self.min_frames, self.max_frames = min_frames, max_frames
        self.random = WorkerRandom(stream=1)

    def __call__(self, batch) -> TrainingBatch:
        generator = self.random.generator()
        length = int(generator.integers(self.min_frames, self.max_frames + 1))
        problems = [problem for *_, speaker_problems in batch for problem in speaker_problems]
        batch = [item for item in batch if item[1]]                     # speakers with usable patterns
        mels = [mel for _, speaker_mels, _, _ in batch for mel in speaker_mels]
        files = [file for _, _, speaker_files, _ in batch for file in speaker_files]
        if len(batch) < 2:
            return TrainingBatch(None, files, problems)
        crops = [slicing.crop_or_pad(mel, length, int(generator.integers(0, max(mel.shape[0] - length, 0) + 1)))
                 for mel in mels]
        return TrainingBatch(_frame_major(crops, length, mels[0].shape[1]), files, problems)


class EvalCollater:
    """Evaluation batches, the same at every evaluation: a dict of
    'indices' (speaker items with usable patterns), 'problems' (unusable patterns met), 'single' [speakers * utterances, mel_dim, frames] (one random
    crop of Min..Max frames, seeded by the batch's first speaker) and 'multi'
    [speakers * utterances * samples, mel_dim, frame_length] (slicing.multi_slices windows)."""

    def __init__(self, min_frames: int, max_frames: int, samples: int, frame_length: int, overlap: int, seed: int = 0):
        self.min_frames, self.max_frames = min_frames, max_frames
        self.samples, self.frame_length, self.overlap = samples, frame_length, overlap
        self.seed = seed

    def __call__(self, batch) -> dict:
        generator = np.random.default_rng([self.seed, batch[0][0], 1])
        length = int(generator.integers(self.min_frames, self.max_frames + 1))
        problems = [problem for *_, speaker_problems in batch for problem in speaker_problems]
        batch = [item for item in batch if item[1]]
        if not batch:
            return {'indices': [], 'problems': problems, 'single': None, 'multi': None}
        indices = [index for index, *_ in batch]
        mels = [mel for _, speaker_mels, _, _ in batch for mel in speaker_mels]
        mel_dim = mels[0].shape[1]
        single = [slicing.crop_or_pad(mel, length, int(generator.integers(0, max(mel.shape[0] - length, 0) + 1)))
                  for mel in mels]
        windows = [window for mel in mels
                   for window in slicing.multi_slices(mel, self.samples, self.frame_length, self.overlap)]
        return {'indices': indices, 'problems': problems, 'single': _frame_major(single, length, mel_dim),
                'multi': _frame_major(windows, self.frame_length, mel_dim)}


def _ignore_interrupts(worker_id: int) -> None:
    """Workers leave Ctrl-C to the main process, which finishes its step and saves, and die with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    runtime.die_with_parent()


def make_loader(dataset, collater, speakers_per_batch: int, num_workers: int, training: bool,
                pin_memory: bool = False, sampler=None):
    """A DataLoader of speaker batches. Training: shuffled (or the given sampler), full batches
    only, workers kept alive across epochs, each preparing two batches ahead, so that a step
    rarely waits. Evaluation: every speaker in order, the last batch possibly smaller."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=speakers_per_batch, collate_fn=collater,
        shuffle=training and sampler is None, sampler=sampler, drop_last=training,
        num_workers=num_workers, persistent_workers=training and num_workers > 0,
        worker_init_fn=_ignore_interrupts if num_workers > 0 else None, pin_memory=pin_memory)
