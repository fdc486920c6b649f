"""Checkpoints: their names, saving and loading, the encoder they hold, the settings they carry,
and the device to run it on.

A checkpoint is a torch.save'd dict in the seed's layout ('Model', 'Optimizer', 'Scheduler',
'Steps', 'Epochs') plus 'Loss' (the GE2E w and b) and 'Hyper_Parameters' (the run's settings as
plain dicts, so that a checkpoint alone rebuilds its encoder). Every reader loads it with
torch.load(weights_only=True): a file from someone else cannot run code. The seed's checkpoints
(no 'Loss', no 'Hyper_Parameters') and bare state_dicts load too.
"""
import io
import os
import re
from types import SimpleNamespace

import torch

from Atomic_Files import write_atomically
from Hyper_Parameters import hyper_parameters_from_dict, load_hyper_parameters, to_yaml
from Modules import Encoder

HYPER_PARAMETER_FILE = 'Hyper_Parameter.yaml'      # what Train.py writes beside its checkpoints
HYPER_PARAMETER_KEY = 'Hyper_Parameters'           # the run's settings inside a checkpoint
CHECKPOINT_NAME = re.compile(r'S_(\d+)\.pkl')


class CheckpointError(ValueError):
    """A checkpoint that is missing, unreadable or does not fit the settings; str is one line."""


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


def save_checkpoint(state: dict, path: str) -> None:
    """torch.save, written atomically (a kill never leaves a truncated checkpoint), folders made."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomically(path, buffer.getvalue())


def load_checkpoint(path: str) -> dict:
    """A checkpoint of this project or of the seed, or a bare state_dict, loaded as data only.
    Raises CheckpointError for a missing, damaged or code-carrying file."""
    if not os.path.isfile(path):
        raise CheckpointError(f'{path}: no such checkpoint')
    try:
        loaded = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:   # a damaged file, or pickled objects that weights_only refuses
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f'{path}: cannot be loaded as a checkpoint ({first_line})') from None
    if not isinstance(loaded, dict):
        raise CheckpointError(f'{path}: not a checkpoint (a {type(loaded).__name__}, not a dict)')
    return loaded


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
    takes its LOCAL_RANK. Without CUDA: the CPU, and warn(message) says so.
    """
    if requested:
        return torch.device(requested)
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
    return torch.device('cuda', int(key)) if key.isdigit() else torch.device('cuda')
