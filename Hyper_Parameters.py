"""Loading Hyper_Parameter.yaml: the seed's keys, plus the port's keys with defaults.

The file is read once by each script (its `-hp PATH` flag) and the result is passed down;
no module reads it at import time.
"""
import copy
import os
from types import SimpleNamespace

import yaml

# Keys the port added. A seed user's file lacks them and still loads.
PORT_DEFAULTS = {
    'Sound': {
        'Trim_Top_dB': {'VCTK': 15, 'VC1': 23, 'VC2': 23, 'Libri': 23, 'CMUA': 60, 'Default': 23},
        'Inference_Top_dB': 20,
        'Min_Frames': 64,
    },
    'Train': {
        'Loss': {'Type': 'softmax', 'Centroid': 'exclusive'},
        'Mixed_Precision': False,
        'Use_Packed_Store': True,
    },
}


class HyperParameterError(ValueError):
    """The hyper-parameter file is missing, unreadable or lacks a key."""


def _merge(defaults: dict, given: dict) -> dict:
    merged = copy.deepcopy(defaults)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def to_namespace(tree):
    """Nested dicts -> nested SimpleNamespace (attribute access: hp.Train.Batch.Train.Speaker)."""
    if isinstance(tree, dict):
        return SimpleNamespace(**{str(key): to_namespace(value) for key, value in tree.items()})
    return tree


def to_dict(tree):
    """The inverse of to_namespace, for saving a run's settings."""
    if isinstance(tree, SimpleNamespace):
        return {key: to_dict(value) for key, value in vars(tree).items()}
    return tree


def load_hyper_parameters(path: str = 'Hyper_Parameter.yaml') -> SimpleNamespace:
    """Read a hyper-parameter YAML file, fill in the port's defaults and return it as a namespace.

    Relative paths in the file (patterns, checkpoints, logs) stay relative to the working
    directory, as users of the seed expect.
    """
    if not os.path.isfile(path):
        raise HyperParameterError(f'{path}: no such hyper-parameter file (pass another with -hp PATH)')
    try:
        with open(path, encoding='utf-8') as stream:
            given = yaml.safe_load(stream)
    except yaml.YAMLError as error:
        raise HyperParameterError(f'{path}: not valid YAML: {error}') from None
    return hyper_parameters_from_dict(given, path)


def hyper_parameters_from_dict(given, origin: str) -> SimpleNamespace:
    """Settings as nested dicts (a YAML file's, or those a checkpoint carries) -> a namespace
    with the port's defaults filled in; origin names them in error messages."""
    if not isinstance(given, dict):
        raise HyperParameterError(f'{origin}: expected a mapping of sections (Sound, Encoder, Train, ...)')
    for section in ('Sound', 'Encoder', 'Train'):
        if section not in given:
            raise HyperParameterError(f'{origin}: the {section} section is missing')
    return to_namespace(_merge(PORT_DEFAULTS, given))


def to_yaml(hp: SimpleNamespace) -> str:
    """hp as YAML text, in the file's order (e.g. to save beside a run's checkpoints)."""
    return yaml.safe_dump(to_dict(hp), sort_keys=False)
