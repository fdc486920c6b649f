"""Training batches gathered from the packed store by threads: Train.py's data path when the store is current.

The DataLoader path (datasets.make_loader) builds every batch, about 50 MB at 64 x 15 utterances of
160 frames, in a fresh shared-memory segment in a worker process; the trainer's process then maps
it, page-faults it and (on CUDA) copies it again to pinned memory, some 46 ms of its own time per
batch on a 16-core Xeon: the loader then delivered the same 21 batches/s with 2 or 8 workers.
Here `Train.Num_Workers` threads copy each crop straight from the memory-mapped parts
(pattern_store.PackedStore) into a few buffers allocated once (pinned on CUDA) in the encoder's
frame-major layout [frames, speakers * utterances, mel_dim]; numpy releases the GIL while it copies.

Batch b of epoch e depends only on (seed, e, b, rank): never on the threads' number or timing.
The draws follow the pickle path's rules (datasets.SpeakerDataset, TrainCollater): one frame length
per batch, uniform in [min_frames, max_frames]; per speaker, `utterances` patterns without
replacement; per utterance a uniform crop offset, or symmetric reflect padding when it is shorter
(slicing.crop_or_pad; pattern_store.PackedStore.gather). The state (epoch, batches handed out in
it) goes into the checkpoint, so a run resumed with -s gets the very batches the uninterrupted run
would have got.
"""
import copy
import threading
import weakref

import numpy as np
import torch

from . import datasets


def draw_batch(generator: np.random.Generator, dataset: datasets.SpeakerDataset, speakers: np.ndarray,
               min_frames: int, max_frames: int) -> tuple:
    """One batch's random draws: (length, files [speakers * utterances] speaker-major, crop offsets [same])."""
    length = int(generator.integers(min_frames, max_frames + 1))
    files = np.concatenate([dataset.choose(int(speaker), generator) for speaker in speakers])
    frames = dataset.store.frames[dataset.rows[files]]
    return length, files, generator.integers(0, np.maximum(frames - length, 0) + 1)


class StoreBatches:
    """Iterable of one epoch per iter(): mels [speakers * utterances, mel_dim, frames], a view of
    frame-major memory [frames, speakers * utterances, mel_dim]; on `device` when it is CUDA.

    A CPU batch is a view of a reused buffer: it stays valid until the next batch is asked for.
    `threads` daemon threads assemble up to threads + 1 batches ahead, across epoch ends; with 0,
    each batch is assembled when asked for. `sampler` (a DistributedSampler, under DDP) gives each
    rank its speakers; otherwise every epoch shuffles all speakers.
    """

    def __init__(self, dataset: datasets.SpeakerDataset, speakers_per_batch: int, min_frames: int, max_frames: int,
                 threads: int, device: torch.device = torch.device('cpu'), sampler=None, seed: int = 0):
        self.dataset, self.speakers_per_batch = dataset, speakers_per_batch
        self.min_frames, self.max_frames = min_frames, max_frames
        self.threads, self.device, self.sampler, self.seed = threads, device, sampler, seed
        self.rank = sampler.rank if sampler is not None else 0
        self.epoch, self.batch = 0, 0                    # the next batch: index `batch` of epoch `epoch`
        cuda = device.type == 'cuda'
        size = max_frames * speakers_per_batch * dataset.utterances * dataset.store.mel_dim
        # Zeroed now (pinned memory is faulted in anyway): the first batches pay no page faults.
        self.buffers = [torch.zeros(size, pin_memory=cuda) for _ in range(threads + 2 if threads else 1)]
        # On CUDA, a buffer is refilled only once its copy to the device has finished.
        self.copied = [torch.cuda.Event() for _ in self.buffers] if cuda else None
        self._orders = {}                                # {epoch: speaker items in batch order}
        self._lock = threading.Lock()
        self._pipeline = None

    def __len__(self) -> int:
        speakers = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return speakers // self.speakers_per_batch

    def state_dict(self) -> dict:
        return {'epoch': self.epoch, 'batch': self.batch}

    def load_state_dict(self, state: dict) -> None:
        self.close()
        self.epoch, self.batch = int(state['epoch']), int(state['batch'])

    def __iter__(self):
        epoch, batches = self.epoch, len(self)
        if self.threads and self._pipeline is None:
            self._pipeline = _Pipeline(weakref.WeakMethod(self._assemble), epoch * batches + self.batch,
                                       len(self.buffers), self.threads)
        for index in range(self.batch, batches):
            if self._pipeline is None:
                slot, length = 0, self._assemble(epoch * batches + index, 0)
            else:
                slot, length = self._pipeline.take(epoch * batches + index)
            self.batch = index + 1
            yield self._hand_out(slot, length)
        self.epoch, self.batch = epoch + 1, 0

    def close(self) -> None:
        """Stop the assembling threads (each finishes the batch it is on); iter() starts them again."""
        if self._pipeline is not None:
            self._pipeline.close()
            self._pipeline = None

    def __del__(self):
        self.close()

    def _order(self, epoch: int) -> np.ndarray:
        """Speaker items of this rank for the epoch, in batch order."""
        with self._lock:
            if epoch not in self._orders:
                if self.sampler is not None:
                    sampler = copy.copy(self.sampler)      # Train.py sets the epoch of its own
                    sampler.set_epoch(epoch)
                    order = np.fromiter(sampler, dtype=np.int64)
                else:
                    order = np.random.default_rng([self.seed, epoch]).permutation(len(self.dataset))
                self._orders = {key: value for key, value in self._orders.items() if key >= epoch - 1}
                self._orders[epoch] = order                  # threads may still be on the epoch before
            return self._orders[epoch]

    def _frames(self, slot: int, length: int) -> torch.Tensor:
        """Buffer `slot` as [length, speakers * utterances, mel_dim]."""
        utterances, mel_dim = self.speakers_per_batch * self.dataset.utterances, self.dataset.store.mel_dim
        return self.buffers[slot][:length * utterances * mel_dim].view(length, utterances, mel_dim)

    def _assemble(self, number: int, slot: int) -> int:
        """Fill buffer `slot` with batch `number` (epoch * len(self) + index); returns its frame length."""
        if self.copied is not None:
            self.copied[slot].synchronize()
        epoch, index = divmod(number, len(self))
        generator = np.random.default_rng([self.seed, epoch, index, self.rank])
        speakers = self._order(epoch)[index * self.speakers_per_batch:(index + 1) * self.speakers_per_batch]
        length, files, offsets = draw_batch(generator, self.dataset, speakers, self.min_frames, self.max_frames)
        self.dataset.store.gather(self.dataset.rows[files], offsets, length, self._frames(slot, length).numpy())
        return length

    def _hand_out(self, slot: int, length: int) -> torch.Tensor:
        mels = self._frames(slot, length).permute(1, 2, 0)                # [utterances, mel_dim, length]
        if self.copied is None:
            return mels
        mels = mels.to(self.device, non_blocking=True)                    # keeps the frame-major strides
        self.copied[slot].record()
        return mels


class _Pipeline:
    """Batches number first, first + 1, ... assembled ahead by daemon threads into free buffer slots
    and taken in order; taking one frees the slot of the one before. The threads hold the assembler
    weakly, so that dropping a StoreBatches stops them. An exception in a thread is raised where its
    batch is taken."""

    def __init__(self, assemble: weakref.WeakMethod, first: int, slots: int, threads: int):
        self.assemble, self.next_number = assemble, first
        self.free, self.ready, self.taken, self.closed = list(range(slots)), {}, None, False
        self.condition = threading.Condition()
        self.threads = [threading.Thread(target=self._work, name=f'StoreBatches-{number}', daemon=True)
                        for number in range(threads)]
        for thread in self.threads:
            thread.start()

    def _work(self) -> None:
        while True:
            with self.condition:
                while not self.closed and not self.free:
                    self.condition.wait()
                if self.closed:
                    return
                slot, number = self.free.pop(), self.next_number
                self.next_number += 1
            assemble = self.assemble()
            if assemble is None:
                return
            try:
                result = assemble(number, slot)
            except BaseException as error:      # noqa: B036 -- handed to the consumer, raised there
                result = error
            del assemble
            with self.condition:
                self.ready[number] = (slot, result)
                self.condition.notify_all()

    def take(self, number: int) -> tuple:
        """(slot, frame length) of batch `number`, once assembled."""
        with self.condition:
            if self.taken is not None:
                self.free.append(self.taken)    # the step on the batch before is done
                self.condition.notify_all()
            while number not in self.ready:
                self.condition.wait()
            slot, result = self.ready.pop(number)
            self.taken = slot
        if isinstance(result, BaseException):
            raise result
        return slot, result

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify_all()
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join()


def training_batches(dataset: datasets.SpeakerDataset, speakers_per_batch: int, min_frames: int, max_frames: int,
                     workers: int, device: torch.device, sampler=None, seed: int = 0):
    """Train.py's training batches: StoreBatches with `workers` threads when the dataset reads a packed
    store, otherwise the pickles' DataLoader with `workers` processes (datasets.make_loader)."""
    if dataset.store is not None:
        return StoreBatches(dataset, speakers_per_batch, min_frames, max_frames, workers, device, sampler, seed)
    return datasets.make_loader(dataset, datasets.TrainCollater(min_frames, max_frames), speakers_per_batch, workers,
                                training=True, pin_memory=device.type == 'cuda', sampler=sampler)
