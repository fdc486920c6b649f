"""Speaker embeddings from audio files: the command line and a small Python API.

    python Inference.py -c Results/Checkpoint/S_100000.pkl -i wav_folder -o Results/Inference
    python Inference.py -c S_100000.pkl --trials veri_test.txt --root vox1_test/wav -o Results/Verification

Outputs in OUT_DIR: embeddings.npy (float32 [utterances, 256], rows L2-normalised, in input
order), embeddings_index.tsv (path and label of each row), speaker_embeddings.pickle
({label: float32 [256]}), tsne.png, skipped.tsv (files that could not be embedded, with why);
with --trials: scores.txt and verification.json (EER and minDCF).

From Python:

    from Inference import load_encoder
    encoder = load_encoder('Results/Checkpoint/S_100000.pkl')
    vector = encoder.embed_file('p225_001.wav')                # float32 [256], unit norm

Each utterance's mel (Audio.py, top_db Sound.Inference_Top_dB) is cut into windows (Slicing.py),
the windows of many files go through the encoder together, and an utterance's embedding is the
L2-normalised mean of its windows' raw embeddings, as in the seed.
"""
import argparse
import copy
import functools
import json
import os
import pickle
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

import Audio
import Cpu_Defaults
import Metrics
import Slicing
from Hyper_Parameters import HyperParameterError, load_hyper_parameters
from Modules import Encoder

SLICE_MODES = ('multi', 'single', 'full')
AUDIO_EXTENSIONS = ('.wav', '.flac', '.m4a', '.ogg', '.mp3')
TSNE_LABELS = 30            # the t-SNE figure shows at most this many labels,
TSNE_PER_LABEL = 20         # and at most this many utterances of each
UNLABELLED = ''
WINDOW_CHUNK = 64           # windows per encoder call on a CPU (measured: about 10 % faster than 320 at once)
PRECISIONS = {'float32': torch.float32, 'bfloat16': torch.bfloat16}


class InferenceError(Exception):
    """A problem the user can fix (a missing file, a checkpoint that does not fit); str is one line."""


# ---------------------------------------------------------------------------------------------
# Checkpoints

def default_hyper_parameter_path(checkpoint: str) -> str:
    """The Hyper_Parameter.yaml beside the checkpoint (what Train.py writes), else ./Hyper_Parameter.yaml."""
    beside = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), 'Hyper_Parameter.yaml')
    return beside if os.path.isfile(beside) else 'Hyper_Parameter.yaml'


def load_state_dict(checkpoint: str) -> tuple[dict, int]:
    """The encoder weights and step count of a checkpoint: this project's, the seed's S_<step>.pkl
    ({'Model', 'Optimizer', 'Scheduler', 'Steps', 'Epochs'}) or a bare state_dict.

    Loaded with torch.load(weights_only=True): a checkpoint holding anything other than tensors
    and plain containers is refused instead of run. Returns (state_dict, steps or -1).
    """
    if not os.path.isfile(checkpoint):
        raise InferenceError(f'{checkpoint}: no such checkpoint')
    try:
        loaded = torch.load(checkpoint, map_location='cpu', weights_only=True)
    except Exception as error:   # a damaged file, or pickled objects that weights_only refuses
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InferenceError(f'{checkpoint}: cannot be loaded as a checkpoint ({first_line})') from None
    if not isinstance(loaded, dict):
        raise InferenceError(f'{checkpoint}: not a checkpoint (a {type(loaded).__name__}, not a dict)')
    state = loaded.get('Model', loaded)
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise InferenceError(f"{checkpoint}: not an encoder checkpoint (no 'Model' state_dict)")
    # Prefixes that DataParallel and torch.compile add to parameter names.
    state = {key.removeprefix('module.').removeprefix('_orig_mod.'): value for key, value in state.items()}
    return state, int(loaded.get('Steps', -1))


def _settings_of(parameter: str, hp) -> str:
    """The hyper-parameter settings that decide a parameter's shape, for error messages."""
    lstm = f'Encoder.LSTM.Sizes {hp.Encoder.LSTM.Sizes}'
    if parameter.startswith('layer_Dict.Prenet'):
        return f'Sound.Mel_Dim {hp.Sound.Mel_Dim}, {lstm}'
    if parameter.startswith('layer_Dict.Linear'):
        return f'{lstm}, Encoder.Embedding_Size {hp.Encoder.Embedding_Size}'
    return f'{lstm}, Encoder.LSTM.Stacks {hp.Encoder.LSTM.Stacks}'


def build_model(state_dict: dict, hp, origin: str = 'checkpoint') -> Encoder:
    """An Encoder shaped by hp holding state_dict's weights, in eval mode.

    Raises InferenceError naming the checkpoint's shape and the hyper-parameter setting when
    they disagree (for example a checkpoint trained with another Mel_Dim or LSTM size).
    """
    model = Encoder.from_hyper_parameters(hp)
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state_dict:
            raise InferenceError(f'{origin}: has no {name}, which the hyper-parameters ask for '
                                 f'({_settings_of(name, hp)}); pass the run\'s Hyper_Parameter.yaml with -hp')
        if tuple(state_dict[name].shape) != tuple(tensor.shape):
            raise InferenceError(f'{origin}: {name} is {list(state_dict[name].shape)} in the checkpoint but '
                                 f'{list(tensor.shape)} by the hyper-parameters ({_settings_of(name, hp)}); '
                                 f'pass the run\'s Hyper_Parameter.yaml with -hp')
    unexpected = sorted(set(state_dict) - set(expected))
    if unexpected:
        raise InferenceError(f'{origin}: has {unexpected[0]}, which the hyper-parameters do not '
                             f'({_settings_of(unexpected[0], hp)}); pass the run\'s Hyper_Parameter.yaml with -hp')
    model.load_state_dict(state_dict)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Windows

def window_length(hp, slices: str) -> int:
    """Frames per window: Train.Inference.Frame_Length (multi, full) or the mean training
    length (Train.Frame_Length.Min + Max) // 2 (single; 160 with the seed's 140-180)."""
    if slices == 'single':
        return (hp.Train.Frame_Length.Min + hp.Train.Frame_Length.Max) // 2
    return hp.Train.Inference.Frame_Length


def mel_windows(mel: np.ndarray, slices: str, samples: int, frame_length: int, overlap: int) -> np.ndarray:
    """[frames, mel_dim] -> [windows, frame_length, mel_dim], always centred (deterministic).

    multi: the seed's `samples` windows overlapping by `overlap` over the centred span;
    single: one centred window; full: windows over the whole utterance.
    """
    if slices == 'multi':
        return Slicing.multi_slices(mel, samples, frame_length, overlap)
    if slices == 'single':
        return Slicing.crop_or_pad(mel, frame_length)[None]
    return Slicing.sliding_windows(mel, frame_length, overlap)


class _FileWindows(torch.utils.data.Dataset):
    """Decodes file i into its windows; run in DataLoader workers, ahead of the encoder."""

    def __init__(self, paths, sound_hp, top_db, windows):
        self.paths, self.sound_hp, self.top_db, self.windows = paths, sound_hp, top_db, windows

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        path = self.paths[index]
        if not os.path.isfile(path):
            return index, None, 'missing: no such file'
        try:
            with one_blas_thread():
                mel = Audio.mel_from_file(path, self.sound_hp, self.top_db)
        except Audio.AudioRejected as error:
            return index, None, str(error)
        return index, self.windows(mel), None


@functools.cache
def _threadpools():
    from threadpoolctl import ThreadpoolController
    return ThreadpoolController()


def one_blas_thread():
    """A context in which numpy's BLAS runs one thread: the mel's small matrix product is many
    times slower with two threads fighting over two busy cores."""
    return _threadpools().limit(limits=1, user_api='blas')


def _as_list(batch):
    return batch


# ---------------------------------------------------------------------------------------------
# The encoder and its API

class SpeakerEncoder:
    """A trained encoder with its audio recipe: audio in, unit-norm float32 [Embedding_Size] out.

    Build one with `load_encoder(checkpoint)`, or wrap a model in memory (Train.py's) with
    `SpeakerEncoder(model, hp)`.

    Args:
        model: Modules.Encoder (weights loaded).
        hp: the hyper-parameters it was trained with (Hyper_Parameters.load_hyper_parameters).
        slices: 'multi' (the seed's 5 x 64 frames), 'single' (one centred window of the training
            length) or 'full' (windows over the whole utterance), see `mel_windows`.
        device: a torch device for the encoder; decoding always runs on the CPU.
        batch_size: utterances per encoder call in `embed_files`.
        workers: processes decoding audio ahead of the encoder in `embed_files` (0: in-process).
        precision: 'float32' (exact), or 'bfloat16' for the encoder's weights and activations:
            faster on CPUs with AVX512-BF16/AMX and on GPUs (emulated, likely slower, elsewhere),
            embeddings within a cosine of about 0.99999 of float32's.
    """

    def __init__(self, model: Encoder, hp, slices: str = 'multi', device='cpu', batch_size: int = 64,
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
        """Mel patterns (Audio.py's, e.g. pattern pickles' 'Mel'), each float32 [frames, Mel_Dim]
        -> float32 [len(mels), Embedding_Size], unit rows."""
        results = []
        for start in range(0, len(mels), self.batch_size):
            windows = [self._windows(mel) for mel in mels[start:start + self.batch_size]]
            results.append(self.embed_window_batch(np.concatenate(windows), [len(w) for w in windows]))
        return np.concatenate(results) if results else np.zeros((0, self.embedding_size), np.float32)

    # Audio ------------------------------------------------------------------------------------

    def embed_waveform(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """One utterance: mono samples [n] (float in [-1, 1], or integer PCM) at sample_rate Hz
        -> float32 [Embedding_Size], unit norm. Raises Audio.AudioRejected (e.g. silence)."""
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise ValueError(f'expected mono samples [n], got shape {samples.shape}')
        if np.issubdtype(samples.dtype, np.integer):
            samples = samples / np.iinfo(samples.dtype).max
        signal = Audio.resample(samples.astype(np.float32), sample_rate, self.hp.Sound.Sample_Rate)
        with one_blas_thread():
            mel = Audio.mel_from_signal(signal, self.hp.Sound, self.top_db)
        return self.embed_mels([mel])[0]

    def embed_file(self, path: str) -> np.ndarray:
        """One audio file (.wav, .flac, .m4a with ffmpeg, ...) -> float32 [Embedding_Size], unit norm.
        Raises Audio.AudioRejected naming the file when it cannot be read or is silent."""
        index, windows, reason = _FileWindows([path], self.hp.Sound, self.top_db, self._windows)[0]
        if reason:
            raise Audio.AudioRejected(f'{path}: {reason}')
        return self.embed_window_batch(windows, [len(windows)])[0]

    def stream_files(self, paths, progress: bool = False):
        """Embed many files, decoding in `workers` processes while the encoder runs.

        Yields (index into paths, float32 [Embedding_Size] or None, reason or None) in input
        order; a file that cannot be embedded gives None and the reason. Memory stays bounded
        by a few batches, whatever the number of files.
        """
        dataset = _FileWindows(list(paths), self.hp.Sound, self.top_db, self._windows)
        workers = self.workers if len(dataset) > self.batch_size else 0   # few files: no start-up cost
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=self.batch_size, shuffle=False, num_workers=workers, collate_fn=_as_list,
            prefetch_factor=4 if workers else None)
        bar = tqdm(total=len(dataset), unit='utt', desc='Embedding', disable=not progress, smoothing=0.1)
        try:
            for batch in loader:
                good = [(index, windows) for index, windows, _ in batch if windows is not None]
                vectors = iter(self.embed_window_batch(np.concatenate([w for _, w in good]), [len(w) for _, w in good])
                               if good else ())
                for index, windows, reason in batch:
                    yield index, (next(vectors) if windows is not None else None), reason
                bar.update(len(batch))
        finally:
            bar.close()

    def embed_files(self, paths, on_error=None, progress: bool = False) -> np.ndarray:
        """Many files -> float32 [len(paths), Embedding_Size], unit rows in input order.

        A file that cannot be embedded raises Audio.AudioRejected naming it; with on_error,
        on_error(path, reason) is called instead and the file's row is NaN.
        """
        paths = list(paths)
        embeddings = np.full((len(paths), self.embedding_size), np.nan, dtype=np.float32)
        for index, vector, reason in self.stream_files(paths, progress):
            if reason is None:
                embeddings[index] = vector
            elif on_error is None:
                raise Audio.AudioRejected(f'{paths[index]}: {reason}')
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
    """Decoding processes that fit this CPU (Cpu_Defaults.choose)."""
    return Cpu_Defaults.choose(precision == 'bfloat16').inference_workers


def normalise(vector: np.ndarray) -> np.ndarray:
    return (vector / max(np.linalg.norm(vector), 1e-12)).astype(np.float32)


def select_device(hp, requested: str = None) -> str:
    """--device when given; else the hyper-parameters' Device ('-1': CPU; an index: that GPU when CUDA is available)."""
    if requested:
        return requested
    device = str(getattr(hp, 'Device', '-1'))
    if device != '-1' and torch.cuda.is_available():
        return f'cuda:{device.split(",")[0]}' if device.split(',')[0].isdigit() else 'cuda'
    return 'cpu'


def load_encoder(checkpoint: str, hp=None, slices: str = 'multi', device: str = 'cpu', **options) -> SpeakerEncoder:
    """A SpeakerEncoder from a checkpoint (this project's or the seed's S_<step>.pkl).

    hp: a hyper-parameter namespace or YAML path; by default the Hyper_Parameter.yaml beside the
    checkpoint, else ./Hyper_Parameter.yaml. options: batch_size, workers (see SpeakerEncoder).
    Raises InferenceError (one line) for a missing checkpoint or one that does not fit hp.
    """
    if hp is None or isinstance(hp, (str, os.PathLike)):
        hp = load_hyper_parameters(str(hp) if hp is not None else default_hyper_parameter_path(checkpoint))
    state, _ = load_state_dict(checkpoint)
    return SpeakerEncoder(build_model(state, hp, checkpoint), hp, slices, device, **options)


# ---------------------------------------------------------------------------------------------
# Verification

@dataclass
class VerificationResult:
    """Scores of the trials whose two files could be embedded, and the metrics over them."""
    eer: float                   # equal error rate, a fraction (0..1)
    min_dcf: float               # normalised minimum detection cost, p_target 0.01, C_miss = C_fa = 1
    scores: np.ndarray           # float32 [trials scored], cosine similarity
    trials: list                 # (target 0/1, path_a, path_b) of each score
    skipped_trials: list = field(default_factory=list)    # trials naming a file that could not be embedded
    unusable_files: dict = field(default_factory=dict)    # path (as in the trial list) -> reason


def read_trials(path: str) -> list:
    """A VoxCeleb trial list ('1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav'
    per line: 1 same speaker, 0 different) -> [(target, path_a, path_b)]."""
    if not os.path.isfile(path):
        raise InferenceError(f'{path}: no such trial list')
    trials = []
    with open(path, encoding='utf-8') as stream:
        for number, line in enumerate(stream, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[0] not in ('0', '1'):
                raise InferenceError(f'{path}:{number}: expected "1|0 path_a path_b", got {line.strip()!r}')
            trials.append((int(fields[0]), fields[1], fields[2]))
    if not trials:
        raise InferenceError(f'{path}: no trials')
    return trials


def score_trials(trials, embedding_of: dict, p_target: float = 0.01) -> VerificationResult:
    """Cosine-score trials from embeddings already computed: embedding_of maps each trial path to
    a unit float32 [E] vector, or to a reason string when the file could not be embedded."""
    kept, skipped, scores = [], [], []
    for trial in trials:
        first, second = embedding_of.get(trial[1]), embedding_of.get(trial[2])
        if isinstance(first, np.ndarray) and isinstance(second, np.ndarray):
            kept.append(trial)
            scores.append(float(np.dot(first, second)))
        else:
            skipped.append(trial)
    unusable = {path: value for path, value in embedding_of.items() if not isinstance(value, np.ndarray)}
    scores = np.asarray(scores, dtype=np.float32)
    targets = np.asarray([trial[0] for trial in kept], dtype=bool)
    if targets.all() or not targets.any():
        raise InferenceError(f'{len(kept)} trials could be scored ({len(skipped)} skipped); '
                             f'EER needs both target and non-target trials')
    return VerificationResult(Metrics.equal_error_rate(scores, targets), Metrics.minimum_dcf(scores, targets, p_target),
                              scores, kept, skipped, unusable)


def evaluate_trials(encoder: SpeakerEncoder, trials, root: str = '', progress: bool = False,
                    known: dict = None) -> VerificationResult:
    """Embed each file named by the trials once (paths relative to root) and score the trials.

    trials: a trial-list path or [(target, path_a, path_b)]. known: embeddings already computed,
    {trial path: unit vector}, which are not recomputed. Train.py calls this for its EER.
    """
    if isinstance(trials, (str, os.PathLike)):
        trials = read_trials(str(trials))
    embedding_of = dict(known or {})
    needed = list(dict.fromkeys(path for _, first, second in trials for path in (first, second)
                                if path not in embedding_of))
    if needed:
        for index, vector, reason in encoder.stream_files([os.path.join(root, path) for path in needed], progress):
            embedding_of[needed[index]] = vector if reason is None else reason
    return score_trials(trials, embedding_of)


# ---------------------------------------------------------------------------------------------
# Inputs

def read_input(source: str) -> tuple[list, list]:
    """INPUT -> (paths, labels).

    A folder: every audio file below it, sorted, labelled by the first folder below INPUT
    (wav48/p225/x.wav -> p225; vox1/id10270/<video>/00001.wav -> id10270); files directly in
    INPUT take INPUT's own folder name. A list file: 'path label' per line (or 'path<TAB>label';
    the label is optional), relative paths taken from the current folder, or from the list's
    folder when not found there. A single audio file: itself, unlabelled.
    """
    if os.path.isdir(source):
        return _walk(source)
    if not os.path.isfile(source):
        raise InferenceError(f'{source}: no such input file or folder')
    if source.lower().endswith(AUDIO_EXTENSIONS):
        return [source], [UNLABELLED]
    paths, labels = [], []
    base = os.path.dirname(source)
    with open(source, encoding='utf-8') as stream:
        for line in stream:
            line = line.rstrip('\r\n')
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            if '\t' in line:
                path, label = line.split('\t', 1)
            elif os.path.exists(line.strip()) or len(line.split()) == 1:
                path, label = line.strip(), UNLABELLED
            else:
                path, label = line.strip().rsplit(maxsplit=1)
            if not os.path.isabs(path) and not os.path.exists(path) and os.path.exists(os.path.join(base, path)):
                path = os.path.join(base, path)
            paths.append(path)
            labels.append(label.strip())
    if not paths:
        raise InferenceError(f'{source}: the list names no files')
    return paths, labels


def _walk(root: str) -> tuple[list, list]:
    own_name = os.path.basename(os.path.normpath(os.path.abspath(root)))
    paths, labels = [], []
    stack = [(root, None)]
    while stack:
        folder, label = stack.pop()
        with os.scandir(folder) as entries:
            entries = sorted(entries, key=lambda entry: entry.name)
        for entry in entries:
            if entry.is_file() and entry.name.lower().endswith(AUDIO_EXTENSIONS):
                paths.append(entry.path)
                labels.append(label or own_name)
        # pushed in reverse so that folders come off the stack in sorted order
        stack.extend((entry.path, label or entry.name) for entry in reversed(entries) if entry.is_dir())
    if not paths:
        raise InferenceError(f'{root}: no audio files ({", ".join(AUDIO_EXTENSIONS)}) below this folder')
    return paths, labels


# ---------------------------------------------------------------------------------------------
# Outputs

class NpyRowWriter:
    """Rows appended to an .npy file as they come; the header's row count is fixed at close().

    The file is written as PATH.partial and renamed at close(), so an interrupted run leaves no
    embeddings.npy that looks complete. Memory: one row at a time.
    """
    HEADER_BYTES = 128

    def __init__(self, path: str, columns: int):
        self.path, self.columns, self.rows = path, columns, 0
        self.stream = open(f'{path}.partial', 'wb')
        self.stream.write(self._header(0))

    def _header(self, rows: int) -> bytes:
        text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {self.columns}), }}"
        length = self.HEADER_BYTES - 10
        return b'\x93NUMPY\x01\x00' + length.to_bytes(2, 'little') + text.ljust(length - 1).encode('latin1') + b'\n'

    def append(self, row: np.ndarray) -> None:
        self.stream.write(np.asarray(row, dtype='<f4').tobytes())
        self.rows += 1

    def close(self) -> None:
        self.stream.seek(0)
        self.stream.write(self._header(self.rows))
        self.stream.close()
        os.replace(f'{self.path}.partial', self.path)


def tsne_figure(vectors: np.ndarray, labels: list, title: str):
    """A matplotlib figure: t-SNE of vectors [n >= 3, E], coloured and shaped by label, legend beside."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE
    points = TSNE(n_components=2, perplexity=min(30.0, max(2.0, (len(vectors) - 1) / 3)), init='pca',
                  random_state=0).fit_transform(vectors)
    names = list(dict.fromkeys(labels))
    colours = plt.get_cmap('tab10').colors
    markers = 'os^DvP*X'
    figure, axes = plt.subplots(figsize=(11, 8))
    for number, name in enumerate(names):
        chosen = np.array([label == name for label in labels])
        axes.scatter(points[chosen, 0], points[chosen, 1], s=18, color=colours[number % 10],
                     marker=markers[(number // 10) % len(markers)], label=name or '(no label)')
    axes.set_title(title)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize='small', markerscale=1.2,
                ncol=1 if len(names) <= 15 else 2, frameon=False)
    return figure


def plot_tsne(vectors: np.ndarray, labels: list, path: str, title: str) -> bool:
    """tsne_figure saved as a PNG at path; False (nothing drawn) when n < 5."""
    if len(vectors) < 5:
        return False
    import matplotlib.pyplot as plt
    figure = tsne_figure(vectors, labels, title)
    figure.savefig(path, dpi=120, bbox_inches='tight')
    plt.close(figure)
    return True


def embed_inputs(encoder: SpeakerEncoder, paths: list, labels: list, out_dir: str, plot: bool, title: str,
                 keep_rows_of: set = frozenset()) -> tuple[int, dict, dict]:
    """The -i pass: writes embeddings.npy, embeddings_index.tsv, skipped.tsv,
    speaker_embeddings.pickle and tsne.png in out_dir.

    Returns (rows written, {path: reason} of skipped files, {absolute path: vector or reason} of
    the paths in keep_rows_of, seconds spent embedding).
    """
    writer = NpyRowWriter(os.path.join(out_dir, 'embeddings.npy'), encoder.embedding_size)
    speaker_sums, speaker_counts = {}, {}
    sample_vectors, sample_labels, sample_counts = [], [], {}
    skipped, kept = {}, {}
    started = time.perf_counter()
    with open(os.path.join(out_dir, 'embeddings_index.tsv'), 'w', encoding='utf-8') as index_file, \
            open(os.path.join(out_dir, 'skipped.tsv'), 'w', encoding='utf-8') as skipped_file:
        index_file.write('path\tlabel\n')
        skipped_file.write('path\treason\n')
        for index, vector, reason in encoder.stream_files(paths, progress=True):
            path, label = paths[index], labels[index]
            if reason is not None:
                skipped[path] = reason
                if os.path.abspath(path) in keep_rows_of:
                    kept[os.path.abspath(path)] = reason
                skipped_file.write(f'{path}\t{reason}\n')
                tqdm.write(f'skipped {path}: {reason}')
                continue
            writer.append(vector)
            index_file.write(f'{path}\t{label}\n')
            if label != UNLABELLED:
                speaker_sums[label] = speaker_sums.get(label, 0.0) + vector.astype(np.float64)
                speaker_counts[label] = speaker_counts.get(label, 0) + 1
            if (label in sample_counts or len(sample_counts) < TSNE_LABELS) and sample_counts.get(label, 0) < TSNE_PER_LABEL:
                sample_counts[label] = sample_counts.get(label, 0) + 1
                sample_vectors.append(vector)
                sample_labels.append(label)
            if os.path.abspath(path) in keep_rows_of:
                kept[os.path.abspath(path)] = vector
    seconds = time.perf_counter() - started
    writer.close()
    speakers = {label: normalise(total) for label, total in speaker_sums.items()}
    with open(os.path.join(out_dir, 'speaker_embeddings.pickle'), 'wb') as stream:
        pickle.dump(speakers, stream, protocol=4)
    if plot and not plot_tsne(np.array(sample_vectors), sample_labels, os.path.join(out_dir, 'tsne.png'), title):
        print('tsne.png not drawn: fewer than 5 utterances')
    return writer.rows, skipped, kept, seconds


def export_encoder(model: Encoder, hp, frames: int, torchscript: str = None, onnx: str = None) -> list:
    """Write the encoder as TorchScript and/or ONNX: input mels float32 [batch, Mel_Dim, frames]
    (any batch and frame count), output raw embeddings [batch, Embedding_Size] (average a
    recording's windows and L2-normalise, as embed_window_batch does). Each export is run on a
    fresh input and compared with the eager model; returns one line per export.
    """
    model = model.cpu().eval()
    example = torch.randn(2, hp.Sound.Mel_Dim, frames)
    check = torch.randn(5, hp.Sound.Mel_Dim, frames + 7)          # another batch and length than traced
    with torch.inference_mode():
        expected = model(check).float().numpy()
    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')          # torch marks torch.jit and the legacy ONNX exporter deprecated
        if torchscript:
            with torch.no_grad():
                traced = torch.jit.trace(model, example)
            traced.save(torchscript)
            with torch.inference_mode():
                got = torch.jit.load(torchscript)(check).numpy()
            lines.append(_parity_line('TorchScript', torchscript, got, expected))
        if onnx:
            try:
                torch.onnx.export(model, (example,), onnx, input_names=['mels'], output_names=['embeddings'],
                                  dynamic_axes={'mels': {0: 'batch', 2: 'frames'}, 'embeddings': {0: 'batch'}},
                                  opset_version=17, dynamo=False)
            except Exception as error:
                raise InferenceError(f'ONNX export failed ({type(error).__name__}: {str(error).splitlines()[0]}); '
                                     f'it needs the onnx package: pip install onnx onnxruntime') from None
            try:
                import onnxruntime
            except ImportError:
                lines.append(f'ONNX: {onnx} (not checked against eager: onnxruntime is not installed)')
            else:
                session = onnxruntime.InferenceSession(onnx, providers=['CPUExecutionProvider'])
                got = session.run(None, {'mels': check.numpy()})[0]
                lines.append(_parity_line('ONNX', onnx, got, expected))
    return lines


def _parity_line(kind: str, path: str, got: np.ndarray, expected: np.ndarray) -> str:
    difference = float(np.abs(got - expected).max())
    if difference > 1e-4:
        raise InferenceError(f'{kind} export {path} differs from the eager model by {difference:.2e}')
    return f'{kind}: {path} (max |difference| from the eager model {difference:.1e} on {list(expected.shape)} outputs)'


# ---------------------------------------------------------------------------------------------
# Command line

def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description='Speaker embeddings, speaker vectors, t-SNE figure and verification scores from audio files.')
    parser.add_argument('-c', '--checkpoint', required=True, help="a checkpoint: this project's or the seed's S_<step>.pkl")
    parser.add_argument('-i', '--input', help="a folder (recursive; label = first folder below it) or a list file ('path label' per line)")
    parser.add_argument('-o', '--output', default='Results/Inference', help='output folder (default Results/Inference)')
    parser.add_argument('-hp', '--hyper_parameters', help='hyper-parameter YAML (default: the one beside the checkpoint, else ./Hyper_Parameter.yaml)')
    parser.add_argument('--slices', choices=SLICE_MODES, default='multi',
                        help="multi: the seed's 5 x 64 frames (default); single: one centred window of the training length; full: windows over the whole utterance")
    parser.add_argument('--no-plot', action='store_true', help='skip tsne.png')
    parser.add_argument('--trials', help="a VoxCeleb trial list ('1 id10270/x/00001.wav id10270/y/00008.wav' per line)")
    parser.add_argument('--root', default='', help='the folder the trial paths are relative to')
    parser.add_argument('--batch', type=int, default=64, help='utterances per encoder call (default 64)')
    parser.add_argument('--workers', type=int, default=None, help=f'audio decoding processes (default {default_workers()} here in float32: Cpu_Defaults)')
    parser.add_argument('--threads', type=int, default=None, help='torch threads for the encoder (default: OMP_NUM_THREADS if set, else Cpu_Defaults, or cores - workers with --workers)')
    parser.add_argument('--precision', choices=tuple(PRECISIONS), default='float32',
                        help='bfloat16: a faster encoder on GPUs and CPUs with AVX512-BF16/AMX, embeddings within cosine ~0.99999 (default float32)')
    parser.add_argument('--device', default=None, help="cpu, cuda, cuda:1 (default: from the hyper-parameters' Device)")
    parser.add_argument('--export-torchscript', metavar='PATH', help='write the encoder as TorchScript (checked against eager)')
    parser.add_argument('--export-onnx', metavar='PATH', help='write the encoder as ONNX (needs the onnx package; checked with onnxruntime when installed)')
    return parser.parse_args(argv)


def run(args) -> None:
    if not (args.input or args.trials or args.export_torchscript or args.export_onnx):
        raise InferenceError('nothing to do: give -i INPUT, --trials FILE, --export-torchscript or --export-onnx')
    hp_path = args.hyper_parameters or default_hyper_parameter_path(args.checkpoint)
    state, steps = load_state_dict(args.checkpoint)
    hp = load_hyper_parameters(hp_path)
    model = build_model(state, hp, args.checkpoint)
    for line in export_encoder(model, hp, window_length(hp, args.slices), args.export_torchscript, args.export_onnx):
        print(line)
    if not (args.input or args.trials):
        return
    device = select_device(hp, args.device)
    encoder = SpeakerEncoder(model, hp, args.slices, device, args.batch, args.workers, args.precision)
    # The cores not decoding run the encoder: oversubscribed OpenMP threads slow it down many times.
    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        Cpu_Defaults.set_threads(Cpu_Defaults.choose(args.precision == 'bfloat16').inference_threads
                                 if args.workers is None else max(1, Cpu_Defaults.usable_cores() - args.workers))
    step_text = f'step {steps}' if steps >= 0 else 'step unknown'
    print(f'{args.checkpoint} ({step_text}), hyper-parameters {hp_path}; {args.slices} slices '
          f'({encoder.window_length}-frame windows), {args.precision} on {device}; '
          f'{encoder.workers} decoding workers, {torch.get_num_threads()} encoder threads')
    os.makedirs(args.output, exist_ok=True)
    trials = read_trials(args.trials) if args.trials else []
    trial_files = {os.path.abspath(os.path.join(args.root, path)): path
                   for _, first, second in trials for path in (first, second)}
    known = {}
    if args.input:
        paths, labels = read_input(args.input)
        rows, skipped, kept, seconds = embed_inputs(encoder, paths, labels, args.output, not args.no_plot,
                                           f'{os.path.basename(args.checkpoint)}, {args.slices} slices',
                                           keep_rows_of=set(trial_files))
        known = {trial_files[path]: vector for path, vector in kept.items()}
        print(f'Embedded {rows:,} of {len(paths):,} files in {seconds:.1f} s ({len(paths) / seconds:.1f} utterances/s)'
              + (f'; {len(skipped):,} skipped (unreadable, empty or silent: see {args.output}/skipped.tsv)' if skipped else ''))
        outputs = ['embeddings.npy', 'embeddings_index.tsv', 'speaker_embeddings.pickle']
        outputs += ['tsne.png'] if os.path.isfile(os.path.join(args.output, 'tsne.png')) and not args.no_plot else []
        print(f'Wrote {", ".join(outputs)} in {args.output}')
    if trials:
        result = evaluate_trials(encoder, trials, args.root, progress=True, known=known)
        write_verification(result, len(trials), args.output)


def write_verification(result: VerificationResult, trial_count: int, out_dir: str) -> None:
    with open(os.path.join(out_dir, 'scores.txt'), 'w', encoding='utf-8') as stream:
        for (target, first, second), score in zip(result.trials, result.scores):
            stream.write(f'{target} {first} {second} {score:.6f}\n')
    for path, reason in result.unusable_files.items():
        print(f'trial file not embedded: {path}: {reason}')
    summary = {'eer_percent': round(100 * result.eer, 4), 'min_dcf': round(result.min_dcf, 5),
               'p_target': 0.01, 'c_miss': 1, 'c_false_alarm': 1, 'trials_scored': len(result.trials),
               'trials_skipped': len(result.skipped_trials), 'files_not_embedded': len(result.unusable_files)}
    with open(os.path.join(out_dir, 'verification.json'), 'w', encoding='utf-8') as stream:
        json.dump(summary, stream, indent=2)
    skipped = (f' ({len(result.skipped_trials):,} skipped: they name {len(result.unusable_files):,} '
               f'missing or unreadable files)') if result.skipped_trials else ''
    print(f'EER {100 * result.eer:.2f} %, minDCF(p_target 0.01) {result.min_dcf:.4f} over '
          f'{len(result.trials):,} of {trial_count:,} trials{skipped}')
    print(f'Wrote scores.txt, verification.json in {out_dir}')


def main(argv=None) -> int:
    args = parse_arguments(argv)
    try:
        run(args)
    except (InferenceError, HyperParameterError) as error:
        print(f'Inference.py: {error}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
