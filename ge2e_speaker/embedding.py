"""Speaker embeddings from audio, mels or waveforms: the Python API.

    import ge2e_speaker
    encoder = ge2e_speaker.load_encoder()                      # the shipped example encoder
    encoder = ge2e_speaker.load_encoder('Results/Checkpoint/S_100000.pkl')
    vector = encoder.embed_file('p225_001.wav')                # float32 [256], unit norm

Each utterance's mel (audio.py, top_db Sound.Inference_Top_dB) is cut into windows (slicing.py),
the windows of many files go through the encoder together, and an utterance's embedding is the
L2-normalised mean of its windows' raw embeddings, as in the seed.
"""
import copy
import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from tqdm import tqdm

from . import audio, cpu_defaults, file_kinds, partials, runtime, slicing
from .checkpoints import load_trained_encoder, select_device
from .modules import Encoder

SLICE_MODES = ('auto', 'multi', 'single', 'full')
NONFINITE = 'non-finite embedding (NaN or infinite values): check the checkpoint with this audio'

# The encoder the package ships (its settings inside it): load_encoder() without a checkpoint.
EXAMPLE_CHECKPOINT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'example_encoder', 'S_2500.pkl')
WINDOW_CHUNK = 64           # windows per encoder call on a CPU (measured: about 10 % faster than 320 at once)
PRECISIONS = {'float32': torch.float32, 'bfloat16': torch.bfloat16}
MIN_FRAMES_SETTING = 'Sound.Inference_Min_Frames'   # utterances shorter after trimming are refused


def window_length(hp, slices: str) -> int:
    """Frames per window: Train.Inference.Frame_Length (auto, multi, full) or the mean training
    length (Train.Frame_Length.Min + Max) // 2 (single; 160 with the seed's 140-180)."""
    if slices == 'single':
        return (hp.Train.Frame_Length.Min + hp.Train.Frame_Length.Max) // 2
    return hp.Train.Inference.Frame_Length


def mel_windows(mel: np.ndarray, slices: str, samples: int, frame_length: int, overlap: int) -> np.ndarray:
    """[frames, mel_dim] -> [windows, frame_length, mel_dim], always centred (deterministic).

    multi: the seed's `samples` windows overlapping by `overlap` over the centred span;
    single: one centred window; full: windows over the whole utterance; auto: multi while the
    utterance fits in the seed's span (192 frames with the seed's settings), full when longer,
    so no frame of a long utterance is left out.
    """
    span = samples * (frame_length - overlap) + overlap
    if slices == 'multi' or (slices == 'auto' and mel.shape[0] <= span):
        return slicing.multi_slices(mel, samples, frame_length, overlap)
    if slices == 'single':
        return slicing.crop_or_pad(mel, frame_length)[None]
    return slicing.sliding_windows(mel, frame_length, overlap)


class _FileWindows(torch.utils.data.Dataset):
    """Decodes file i into its windows; run in DataLoader workers, ahead of the encoder."""

    def __init__(self, paths, sound_hp, top_db, windows):
        self.paths, self.sound_hp, self.top_db, self.windows = paths, sound_hp, top_db, windows
        self.min_frames = sound_hp.Inference_Min_Frames

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        with audio.one_blas_thread():
            return self.decode(index)

    def decode(self, index):
        """(index, windows float32 [k, frames, Mel_Dim] or None, reason or None); numpy's BLAS
        limited by the caller (one_blas_thread)."""
        path = self.paths[index]
        problem = file_kinds.problem(path)          # missing, or a pipe or device: never opened
        if problem is not None:
            return index, None, problem
        try:
            mel = audio.mel_from_file(path, self.sound_hp, self.top_db, self.min_frames, MIN_FRAMES_SETTING)
        except audio.AudioRejected as error:
            return index, None, str(error)
        return index, self.windows(mel), None

    def threaded_batches(self, batch_size: int, threads: int):
        """The files in batches of batch_size items, each batch decoded by `threads` threads of
        this process while the encoder waits (libsndfile, soxr, numpy and scipy.fft release the
        GIL: two threads decode 1.9x as fast as one), so every core the encoder uses decodes too."""
        with ThreadPoolExecutor(threads) as pool:
            for start in range(0, len(self), batch_size):
                with audio.one_blas_thread():
                    batch = list(pool.map(self.decode, range(start, min(start + batch_size, len(self)))))
                yield batch


def _as_list(batch):
    return batch


class SpeakerEncoder:
    """A trained encoder with its audio recipe: audio in, unit-norm float32 [Embedding_Size] out.

    Build one with `load_encoder(checkpoint)`, or wrap a model in memory (Train.py's) with
    `SpeakerEncoder(model, hp)`.

    Args:
        model: modules.Encoder (weights loaded).
        hp: the hyper-parameters it was trained with (hyper_parameters.load_hyper_parameters).
        slices: 'auto' (the seed's 5 x 64 frames up to 192 frames, windows over the whole
            utterance beyond), 'multi' (the seed's 5 x 64 frames, the centre of a longer one),
            'single' (one centred window of the training length) or 'full' (windows over the whole
            utterance), see `mel_windows`.
        device: a torch device for the encoder; decoding always runs on the CPU.
        batch_size: utterances per encoder call in `embed_files`.
        workers: processes decoding audio ahead of the encoder in `embed_files` (0: in this process,
            a batch at a time on torch's thread count, while the encoder waits).
        precision: 'float32' (exact), or 'bfloat16' for the encoder's weights and activations:
            faster on CPUs with AVX512-BF16/AMX and on GPUs (emulated, likely slower, elsewhere),
            embeddings within a cosine of about 0.99999 of float32's.
    """

    def __init__(self, model: Encoder, hp, slices: str = 'auto', device='cpu', batch_size: int = 64,
                 workers: int = None, precision: str = 'float32'):
        if slices not in SLICE_MODES:
            raise ValueError(f'slices must be one of {SLICE_MODES}, not {slices!r}')
        if precision not in PRECISIONS:
            raise ValueError(f'precision must be one of {tuple(PRECISIONS)}, not {precision!r}')
        self.dtype = PRECISIONS[precision]
        # a bfloat16 copy: the caller's model (Train.py's, say) stays as it is
        self.model = (copy.deepcopy(model) if self.dtype != torch.float32 else model).to(device, self.dtype)
        self.hp = hp
        self.slices = slices
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.workers = default_workers(precision) if workers is None else workers
        self.top_db = hp.Sound.Inference_Top_dB
        self.window_length = window_length(hp, slices)
        self.embedding_size = hp.Encoder.Embedding_Size
        inference = hp.Train.Inference
        self._windows = functools.partial(mel_windows, slices=slices, samples=inference.Samples,
                                          frame_length=self.window_length, overlap=inference.Overlap_Length)
        self.partial_windows = partials.Windows(hp.Sound, inference)

    # Mels -------------------------------------------------------------------------------------

    def embed_window_batch(self, windows: np.ndarray, counts) -> np.ndarray:
        """Windows of several utterances -> their embeddings.

        windows: float32 [sum(counts), frames, Mel_Dim], utterance after utterance;
        counts: windows per utterance. Returns float32 [len(counts), Embedding_Size], unit rows.
        """
        counts = torch.as_tensor(np.asarray(counts), dtype=torch.long)
        mels = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device, self.dtype)
        mels = mels.transpose(1, 2)                                    # [windows, mel, frames]
        # On a CPU, chunks of windows keep the LSTM's working set in cache (faster than one big call).
        chunk = WINDOW_CHUNK if self.device.type == 'cpu' else len(mels)
        with torch.inference_mode():
            raw = torch.cat([self.model(part).float() for part in mels.split(chunk)])   # [windows, E]
            owner = torch.repeat_interleave(torch.arange(len(counts), device=self.device), counts.to(self.device))
            sums = torch.zeros(len(counts), raw.shape[1], device=self.device).index_add_(0, owner, raw)
            means = sums / counts.to(self.device, raw.dtype)[:, None]
            return torch.nn.functional.normalize(means, dim=1).cpu().numpy()

    def embed_mels(self, mels) -> np.ndarray:
        """Mel patterns (audio.py's, e.g. pattern pickles' 'Mel'), each float32 [frames, Mel_Dim]
        -> float32 [len(mels), Embedding_Size], unit rows."""
        results = []
        for start in range(0, len(mels), self.batch_size):
            windows = [self._windows(mel) for mel in mels[start:start + self.batch_size]]
            results.append(self.embed_window_batch(np.concatenate(windows), [len(w) for w in windows]))
        return np.concatenate(results) if results else np.zeros((0, self.embedding_size), np.float32)

    # Audio ------------------------------------------------------------------------------------

    @staticmethod
    def as_float(samples) -> np.ndarray:
        """Mono samples [n] (float in [-1, 1], or integer PCM) -> float32 [n]."""
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise ValueError(f'expected mono samples [n], got shape {samples.shape}')
        if np.issubdtype(samples.dtype, np.integer):
            samples = samples / np.iinfo(samples.dtype).max
        return samples.astype(np.float32, copy=False)

    def model_signal(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """Samples at sample_rate -> float32 samples at Sound.Sample_Rate (soxr HQ)."""
        return audio.resample(self.as_float(samples), sample_rate, self.hp.Sound.Sample_Rate)

    def embed_waveform(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """One utterance: mono samples [n] (float in [-1, 1], or integer PCM) at sample_rate Hz
        -> float32 [Embedding_Size], unit norm. Raises audio.AudioRejected (silence, fewer than
        Sound.Inference_Min_Frames frames after trimming)."""
        signal = self.model_signal(samples, sample_rate)
        with audio.one_blas_thread():
            mel = audio.mel_from_signal(signal, self.hp.Sound, self.top_db, self.hp.Sound.Inference_Min_Frames,
                                        MIN_FRAMES_SETTING)
        return self.embed_mels([mel])[0]

    def embed_utterance(self, wav: np.ndarray, sample_rate: int, return_partials: bool = False):
        """One utterance, as Resemblyzer's VoiceEncoder.embed_utterance: wav mono samples [n] at
        sample_rate Hz -> float32 [Embedding_Size], unit norm (embed_waveform's: silence trimmed,
        the encoder's slicing).

        With return_partials, embeddings over time instead, on the untrimmed signal:
        (embedding [Embedding_Size], partials float32 [k, Embedding_Size] unit rows, spans), where
        spans[i] is the slice(start, stop) of wav's samples (at sample_rate) that partial i
        covers: windows of Train.Inference.Frame_Length frames (64: 1.02 s at 16 kHz) every
        Frame_Length - Overlap_Length frames (0.51 s), the first from sample 0, the last to
        sample n; the embedding is the normalised mean of the partials.
        """
        if not return_partials:
            return self.embed_waveform(wav, sample_rate)
        wav = self.as_float(wav)
        with audio.one_blas_thread():
            windows, spans = self.partial_windows.of(self.model_signal(wav, sample_rate), len(wav),
                                                     sample_rate / self.hp.Sound.Sample_Rate)
        partial = self.embed_window_batch(windows, [1] * len(windows))     # [k, E], unit rows
        return normalise(partial.mean(axis=0)), partial, spans

    def stream(self, sample_rate: int) -> partials.PartialStream:
        """Embeddings over time of a signal that arrives in chunks at sample_rate Hz:
        stream.push(chunk) -> (new partials [k, E], their spans), stream.close() -> the rest;
        together equal to embed_utterance(whole, sample_rate, return_partials=True)[1:]."""
        return partials.PartialStream(self, sample_rate)

    def embed_file(self, path: str) -> np.ndarray:
        """One audio file (.wav, .flac, .m4a with ffmpeg, ...) -> float32 [Embedding_Size], unit norm.
        Raises audio.AudioRejected naming the file when it cannot be read or is silent."""
        index, windows, reason = _FileWindows([path], self.hp.Sound, self.top_db, self._windows)[0]
        if reason:
            raise audio.AudioRejected(f'{path}: {reason}')
        return self.embed_window_batch(windows, [len(windows)])[0]

    def stream_files(self, paths, progress: bool = False):
        """Embed many files, decoding in `workers` processes while the encoder runs (workers 0:
        a batch at a time in this process, on as many threads as torch has).

        Yields (index into paths, float32 [Embedding_Size] or None, reason or None) in input
        order; a file that cannot be embedded, or whose embedding is not finite, gives None and
        the reason. Memory stays bounded by a few batches, whatever the number of files.
        """
        dataset = _FileWindows(list(paths), self.hp.Sound, self.top_db, self._windows)
        if self.workers and len(dataset) > self.batch_size:     # few files: no start-up cost
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=self.batch_size, shuffle=False, num_workers=self.workers, collate_fn=_as_list,
                prefetch_factor=4, worker_init_fn=runtime.die_with_parent)
        else:   # in this process, on the encoder's cores: the encoder waits for its batch anyway
            loader = dataset.threaded_batches(self.batch_size, torch.get_num_threads())
        bar = tqdm(total=len(dataset), unit='utt', desc='Embedding', disable=not progress, smoothing=0.1)
        try:
            for batch in loader:
                good = [(index, windows) for index, windows, _ in batch if windows is not None]
                vectors = iter(self.embed_window_batch(np.concatenate([w for _, w in good]), [len(w) for _, w in good])
                               if good else ())
                for index, windows, reason in batch:
                    vector = next(vectors) if windows is not None else None
                    if vector is not None and not np.isfinite(vector).all():
                        vector, reason = None, NONFINITE
                    yield index, vector, reason
                bar.update(len(batch))
        finally:
            bar.close()

    def embed_files(self, paths, on_error=None, progress: bool = False) -> np.ndarray:
        """Many files -> float32 [len(paths), Embedding_Size], unit rows in input order.

        A file that cannot be embedded raises audio.AudioRejected naming it; with on_error,
        on_error(path, reason) is called instead and the file's row is NaN.
        """
        paths = list(paths)
        embeddings = np.full((len(paths), self.embedding_size), np.nan, dtype=np.float32)
        for index, vector, reason in self.stream_files(paths, progress):
            if reason is None:
                embeddings[index] = vector
            elif on_error is None:
                raise audio.AudioRejected(f'{paths[index]}: {reason}')
            else:
                on_error(paths[index], reason)
        return embeddings

    def embed_speaker(self, utterances) -> np.ndarray:
        """A speaker from several utterances: paths and/or (samples, sample_rate) pairs ->
        the re-normalised mean of their embeddings, float32 [Embedding_Size]."""
        vectors = [self.embed_waveform(*item) if isinstance(item, tuple) else self.embed_file(item)
                   for item in utterances]
        return normalise(np.mean(vectors, axis=0))


def default_workers(precision: str = 'float32') -> int:
    """Decoding processes that fit this CPU (cpu_defaults.choose)."""
    return cpu_defaults.choose(precision == 'bfloat16').inference_workers


def normalise(vector: np.ndarray) -> np.ndarray:
    return (vector / max(np.linalg.norm(vector), 1e-12)).astype(np.float32)


def load_encoder(checkpoint: str = None, hp=None, slices: str = 'auto', device=None, **options) -> SpeakerEncoder:
    """A SpeakerEncoder from a checkpoint (this project's or the seed's S_<step>.pkl); without one,
    the example encoder the package ships (EXAMPLE_CHECKPOINT).

    hp: a hyper-parameter namespace or YAML path; by default the settings the checkpoint carries,
    else the Hyper_Parameter.yaml beside it, else ./Hyper_Parameter.yaml. device: by default the
    hyper-parameters' Device (the CPU, with a warning, when it names a GPU this machine lacks).
    options: batch_size, workers, precision (see SpeakerEncoder). Raises
    checkpoints.CheckpointError (one line) for a missing checkpoint or one that does not fit hp.
    """
    model, hp, _, _ = load_trained_encoder(EXAMPLE_CHECKPOINT if checkpoint is None else checkpoint, hp)
    device = device or select_device(getattr(hp, 'Device', '-1'), warn=warnings.warn)
    return SpeakerEncoder(model, hp, slices, device, **options)
