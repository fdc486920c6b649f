"""Checkpoints: their names, saving and loading, the encoder they hold, the settings they carry,
and the device to run it on.

A checkpoint is a torch.save'd dict in the seed's layout ('Model', 'Optimizer', 'Scheduler',
'Steps', 'Epochs') plus 'Loss' (the GE2E w and b) and 'Hyper_Parameters' (the run's settings as
plain dicts, so that a checkpoint alone rebuilds its encoder). Every reader loads it with
torch.load(weights_only=True): a file from someone else cannot run code. The seed's checkpoints
(no 'Loss', no 'Hyper_Parameters') and bare state_dicts load too.
"""
import contextlib
import io
import os
import re
import warnings
from types import SimpleNamespace

import torch

from . import file_kinds
from .atomic_files import folder_problem, space_note, write_atomically
from .hyper_parameters import hyper_parameters_from_dict, load_hyper_parameters, to_yaml
from .modules import Encoder

HYPER_PARAMETER_FILE = 'Hyper_Parameter.yaml'      # what Train.py writes beside its checkpoints
HYPER_PARAMETER_KEY = 'Hyper_Parameters'           # the run's settings inside a checkpoint
CHECKPOINT_NAME = re.compile(r'S_(\d+)\.pkl')


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit the settings, or a checkpoint
    folder that cannot take this run's checkpoints; str is one line."""


class DeviceError(ValueError):
    """A device that is not one, or that this machine lacks; str is one line."""


# ------------------------------------------------------------------------------- names and files

def checkpoint_file(checkpoint_path: str, step: int) -> str:
    """<checkpoint_path>/S_<step>.pkl, the seed's name."""
    return os.path.join(checkpoint_path, f'S_{step}.pkl')


def list_checkpoints(checkpoint_path: str) -> list:
    """Steps of the S_<step>.pkl files in checkpoint_path, ascending."""
    if not os.path.isdir(checkpoint_path):
        return []
    return sorted(int(match.group(1)) for name in os.listdir(checkpoint_path)
                  if (match := CHECKPOINT_NAME.fullmatch(name)))


def missing_checkpoint_message(checkpoint_path: str, step: int) -> str:
    """'<path>: no such checkpoint' and the checkpoints that do exist there."""
    steps = list_checkpoints(checkpoint_path)
    found = (f'checkpoints there: {", ".join(f"S_{s}.pkl" for s in steps)} (resume the last with -s {steps[-1]})'
             if steps else 'there are no checkpoints there (start from scratch without -s)')
    return f'{checkpoint_file(checkpoint_path, step)}: no such checkpoint; {found}'


def resume_advice(checkpoint_path: str, command: str) -> str:
    """How to go on from the last checkpoint in checkpoint_path: '... resume with: COMMAND -s STEP'."""
    last = list_checkpoints(checkpoint_path)[-1:]
    if not last:
        return 'no checkpoint is saved; start the run again once the cause is fixed'
    return f'checkpoint S_{last[0]}.pkl is saved; resume with: {command} -s {last[0]}'


def check_checkpoint_folder(checkpoint_path: str, new_run: bool) -> None:
    """Before a run starts: a new run (not -s) must not overwrite another run's checkpoints, and
    the folder must take files (not read-only, not full, not a file). Raises CheckpointError."""
    steps = list_checkpoints(checkpoint_path)
    if new_run and steps:
        raise CheckpointError(
            f'{checkpoint_path}: holds the checkpoints of another run (S_{steps[0]}.pkl to S_{steps[-1]}.pkl), '
            f'which a new run would overwrite; resume that run with -s {steps[-1]}, or choose another '
            f'Checkpoint_Path for the new one')
    problem = folder_problem(checkpoint_path)
    if problem:
        raise CheckpointError(f'{problem}; checkpoints cannot be saved: make it writable, free space, '
                              f'or choose another Checkpoint_Path')


def save_checkpoint(state: dict, path: str, resume_command: str = 'python Train.py') -> None:
    """torch.save, written atomically (a kill never leaves a truncated checkpoint), folders made.
    Raises CheckpointError when the folder takes no file (full, read-only), naming the last
    checkpoint there to resume from (with resume_command -s STEP)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    try:
        write_atomically(path, buffer.getvalue())
    except OSError as error:
        folder = os.path.dirname(path) or '.'
        raise CheckpointError(f'{path}: cannot be written ({error.strerror or error}; '
                              f'{space_note(folder, len(buffer.getvalue()))}); free space or make '
                              f'{folder} writable; {resume_advice(folder, resume_command)}') from None


@contextlib.contextmanager
def training_state_of(path: str):
    """Around reading a checkpoint's optimiser, schedule and counters for -s: a file that holds
    none, or one of another run's shape, raises CheckpointError (one line) instead."""
    try:
        yield
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as error:
        detail = str(error).splitlines()[0] if str(error) else ''
        raise CheckpointError(f'{path}: cannot be resumed: its training state does not fit this run '
                              f'({type(error).__name__}: {detail}); start a new run from its encoder with '
                              f'--init {path} and another Checkpoint_Path') from None


def load_checkpoint(path: str) -> dict:
    """A checkpoint of this project or of the seed, or a bare state_dict, loaded as data only.
    Raises CheckpointError for a missing, damaged or code-carrying file."""
    if not os.path.exists(path):
        raise CheckpointError(f'{path}: no such checkpoint')
    if file_kinds.problem(path) is not None:
        raise CheckpointError(f'{path}: {file_kinds.problem(path)}; a checkpoint is a file (S_<step>.pkl)')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')          # torch's notes on pickle protocols
            loaded = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:   # a damaged file, or pickled objects that weights_only refuses
        raise CheckpointError(f'{path}: cannot be loaded as a checkpoint ({_load_failure(error, path)})') from None
    if not isinstance(loaded, dict):
        raise CheckpointError(f'{path}: not a checkpoint (a {type(loaded).__name__}, not a dict)')
    return loaded


def _load_failure(error: Exception, path: str) -> str:
    """Why torch.load failed, in our words: torch's own message advises weights_only=False, which
    would run whatever code the file carries, so none of its text is shown but the name refused."""
    with open(path, 'rb') as stream:
        start = stream.read(2)
    if start[:2] != b'PK' and start[:1] != b'\x80':          # neither a torch.save zip nor a pickle
        return 'not a torch.save file'
    text = str(error)
    refused = re.search(r'GLOBAL ([\w.]+)', text)
    if refused:
        return f'it names Python code ({refused.group(1)}), which a checkpoint never needs; refused, nothing was run'
    if 'Weights only load failed' in text:
        return 'it holds pickle instructions that a checkpoint never needs; refused, nothing was run'
    if 'zip archive' in text or 'central directory' in text or isinstance(error, EOFError):
        return 'truncated or damaged: not a whole torch.save file'
    return 'not a torch.save file'


def save_hyper_parameters_beside(hp: SimpleNamespace, checkpoint_path: str) -> None:
    """The run's settings as <checkpoint_path>/Hyper_Parameter.yaml, for readers of the YAML."""
    write_atomically(os.path.join(checkpoint_path, HYPER_PARAMETER_FILE), to_yaml(hp))


def hyper_parameters_of(path: str, checkpoint: dict, given=None) -> tuple:
    """The settings a checkpoint was trained with, and where they came from (for the log):
    `given` (a namespace, or a YAML path: -hp), else those the checkpoint carries, else the
    Hyper_Parameter.yaml beside it (the seed's checkpoints; older runs of this project), else
    ./Hyper_Parameter.yaml. Returns (namespace, source)."""
    if given is not None and not isinstance(given, (str, os.PathLike)):
        return given, 'given'
    if given is not None:
        return load_hyper_parameters(str(given)), str(given)
    if isinstance(checkpoint.get(HYPER_PARAMETER_KEY), dict):
        return hyper_parameters_from_dict(checkpoint[HYPER_PARAMETER_KEY], f'{path} ({HYPER_PARAMETER_KEY})'), \
            'carried by the checkpoint'
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), HYPER_PARAMETER_FILE)
    source = beside if os.path.isfile(beside) else HYPER_PARAMETER_FILE
    return load_hyper_parameters(source), source


# ------------------------------------------------------------------------------------ the encoder

def encoder_state(checkpoint: dict, path: str) -> dict:
    """The encoder's state_dict in a checkpoint ('Model', or the whole dict when bare), without
    the prefixes that DataParallel ('module.') and torch.compile ('_orig_mod.') add."""
    state = checkpoint.get('Model', checkpoint)
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise CheckpointError(f"{path}: not an encoder checkpoint (no 'Model' state_dict)")
    return {key.removeprefix('module.').removeprefix('_orig_mod.'): value for key, value in state.items()}


def _settings_of(parameter: str, hp) -> str:
    """The hyper-parameter settings that decide a parameter's shape, for error messages."""
    lstm = f'Encoder.LSTM.Sizes {hp.Encoder.LSTM.Sizes}'
    if parameter.startswith('layer_Dict.Prenet'):
        return f'Sound.Mel_Dim {hp.Sound.Mel_Dim}, {lstm}'
    if parameter.startswith('layer_Dict.Linear'):
        return f'{lstm}, Encoder.Embedding_Size {hp.Encoder.Embedding_Size}'
    return f'{lstm}, Encoder.LSTM.Stacks {hp.Encoder.LSTM.Stacks}'


def load_encoder_state(model: Encoder, state_dict: dict, hp, origin: str) -> Encoder:
    """Load state_dict into model (shaped by hp). Raises CheckpointError naming the checkpoint's
    shape and the setting that disagrees (say a checkpoint trained with another Mel_Dim)."""
    hint = "pass the run's Hyper_Parameter.yaml with -hp"
    expected = model.state_dict()
    for name, tensor in expected.items():
        if name not in state_dict:
            raise CheckpointError(f'{origin}: has no {name}, which the hyper-parameters ask for '
                                  f'({_settings_of(name, hp)}); {hint}')
        if tuple(state_dict[name].shape) != tuple(tensor.shape):
            raise CheckpointError(f'{origin}: {name} is {list(state_dict[name].shape)} in the checkpoint but '
                                  f'{list(tensor.shape)} by the hyper-parameters ({_settings_of(name, hp)}); {hint}')
    unexpected = sorted(set(state_dict) - set(expected))
    if unexpected:
        raise CheckpointError(f'{origin}: has {unexpected[0]}, which the hyper-parameters do not '
                              f'({_settings_of(unexpected[0], hp)}); {hint}')
    model.load_state_dict(state_dict)
    return model


def load_for_fine_tuning(path: str, encoder: Encoder, loss: torch.nn.Module, hp) -> tuple:
    """Train.py --init: a checkpoint's encoder weights into encoder (shaped by hp), and its GE2E w
    and b into loss where it has them (the seed's have none). Returns (its step or -1, where w and
    b come from, for the log). Raises CheckpointError."""
    checkpoint = load_checkpoint(path)
    load_encoder_state(encoder, encoder_state(checkpoint, path), hp, path)
    loss_state = checkpoint.get('Loss')
    if isinstance(loss_state, dict) and set(loss_state) == {'w', 'b'}:
        loss.load_state_dict(loss_state)
        origin = f'w = {loss.w.item():g}, b = {loss.b.item():g} from it'
    else:
        origin = f'no w and b in it: they start at w = {loss.w.item():g}, b = {loss.b.item():g}'
    return int(checkpoint.get('Steps', -1)), origin


def load_trained_encoder(path: str, hp=None) -> tuple:
    """A checkpoint's encoder, ready for inference. hp: see hyper_parameters_of.
    Returns (Encoder in eval mode, hyper-parameters, their source, step or -1)."""
    checkpoint = load_checkpoint(path)
    hp, source = hyper_parameters_of(path, checkpoint, hp)
    model = load_encoder_state(Encoder.from_hyper_parameters(hp), encoder_state(checkpoint, path), hp, path)
    return model.eval(), hp, source, int(checkpoint.get('Steps', -1))


# -------------------------------------------------------------------------------------- device

def select_device(device_key, requested: str = None, local_rank: int = None, warn=None) -> torch.device:
    """The device to compute on, for training and inference alike.

    `requested` (cpu, cuda, cuda:1; Inference.py's --device) wins. Otherwise the Device key:
    '-1' is the CPU, an index that CUDA device; under torchrun (local_rank given) each process
    takes its LOCAL_RANK. Without CUDA: the CPU, and warn(message) says so. Raises DeviceError
    for a requested device that is not one or is not here, and a Device index this machine lacks.
    """
    if requested:
        return _checked_device(requested, '--device')
    key = str(device_key).split(',')[0].strip()
    if key == '-1':
        return torch.device('cpu')
    if not torch.cuda.is_available():
        if warn is not None:
            warn(f"Device is '{device_key}' but CUDA is not available here: running on the CPU "
                 f"(set Device: '-1' to choose the CPU and silence this warning).")
        return torch.device('cpu')
    if local_rank is not None:
        return torch.device('cuda', local_rank)
    return _checked_device(f'cuda:{key}' if key.isdigit() else 'cuda', f"Device '{device_key}' (hyper-parameters)")


def _checked_device(text: str, setting: str) -> torch.device:
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise DeviceError(f'{setting}: {text!r} is not a device; use cpu, cuda or cuda:N') from None
    if device.type == 'cpu':
        return device
    if device.type != 'cuda':
        raise DeviceError(f'{setting}: {text!r} is not supported here; use cpu, cuda or cuda:N')
    if not torch.cuda.is_available():
        raise DeviceError(f'{setting}: {text} asks for CUDA, which is not available here; use cpu')
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise DeviceError(f'{setting}: {text}: this machine has {count} CUDA device{"s" if count > 1 else ""} '
                          f'(cuda:0 to cuda:{count - 1})')
    return device
