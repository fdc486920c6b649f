"""Loading Hyper_Parameter.yaml: the seed's keys, plus the port's keys with defaults.

The file is read once by each script (its `-hp PATH` flag) and the result is passed down;
no module reads it at import time.
"""
import copy
import os
import re
from types import SimpleNamespace
from typing import Callable, NamedTuple

import yaml

from . import file_kinds

# Keys the port added. A seed user's file lacks them and still loads.
PORT_DEFAULTS = {
    'Sound': {
        'Trim_Top_dB': {'VCTK': 15, 'VC1': 23, 'VC2': 23, 'Libri': 23, 'CMUA': 60, 'Default': 23},
        'Inference_Top_dB': 20,
        'Min_Frames': 64,
        'Inference_Min_Frames': 16,
    },
    'Train': {
        'Loss': {'Type': 'softmax', 'Centroid': 'exclusive'},
        'Mixed_Precision': False,
        'Use_Packed_Store': True,
        'Seed': 0,
    },
    'Augmentation': {   # all off: the original trains on clean patterns (augmentation.py)
        'Speed': [],
        'Noise': {'Probability': 0.0, 'SNR': [5, 20]},
        'Babble': {'Probability': 0.0, 'SNR': [10, 20], 'Speakers': [3, 6]},
        'Reverb': {'Probability': 0.0, 'RT60': [0.2, 0.8], 'Rooms': 64},
        'Time_Mask': {'Count': 0, 'Width': 10},
        'Frequency_Mask': {'Count': 0, 'Width': 8},
        'Seed': 0,
    },
}


class HyperParameterError(ValueError):
    """The hyper-parameter file is missing, unreadable, lacks a key or holds a bad value."""


class Rule(NamedTuple):
    """What a key's value must be: `expected` says it to the user, `holds` checks it."""
    expected: str
    holds: Callable


def whole_number(minimum: int) -> Rule:
    return Rule(f'a whole number >= {minimum}',
                lambda value: isinstance(value, int) and not isinstance(value, bool) and value >= minimum)


def number_above(bound: float) -> Rule:
    return Rule(f'a number > {bound:g}',
                lambda value: isinstance(value, (int, float)) and not isinstance(value, bool) and value > bound)


def one_of(*choices: str) -> Rule:
    return Rule(' or '.join(choices), lambda value: value in choices)


def number_range(low: float, high: float) -> Rule:
    return Rule(f'[LOW, HIGH] with {low:g} <= LOW <= HIGH <= {high:g}',
                lambda value: isinstance(value, list) and len(value) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
                and low <= value[0] <= value[1] <= high)


PROBABILITY = Rule('a number from 0 to 1',
                   lambda value: isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1)
SPEEDS = Rule('a list of speed factors between 0.5 and 2, e.g. [0.9, 1.1] ([] for none)',
              lambda value: isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                            and 0.5 < v < 2 for v in value))
FLAG = Rule('true or false', lambda value: isinstance(value, bool))
NAME = Rule('text: a path or file name', lambda value: isinstance(value, str) and value.strip() != '')
DEVICE = Rule("'-1' (the CPU) or a CUDA index such as '0'",
              lambda value: not isinstance(value, bool)
              and re.fullmatch(r'-1|\d+(\s*,\s*\d+)*', str(value)) is not None)
POSITIVE = whole_number(1)
PATTERN_ROOT = {'Path': NAME, 'Metadata_File': NAME}
BATCH = {'Speaker': POSITIVE, 'Pattern_per_Speaker': POSITIVE}

# Every key the project reads, and what it must be. Keys of the seed it ignores (Train.ADAM) are not checked.
SCHEMA = {
    'Sound': {
        'Spectrogram_Dim': whole_number(2), 'Mel_Dim': POSITIVE, 'Frame_Length': POSITIVE, 'Frame_Shift': POSITIVE,
        'Sample_Rate': POSITIVE, 'Max_Abs_Mel': number_above(0),
        'Trim_Top_dB': {dataset: number_above(0) for dataset in PORT_DEFAULTS['Sound']['Trim_Top_dB']},
        'Inference_Top_dB': number_above(0), 'Min_Frames': POSITIVE,
        'Inference_Min_Frames': POSITIVE,
    },
    'Encoder': {'Embedding_Size': POSITIVE, 'LSTM': {'Sizes': POSITIVE, 'Stacks': POSITIVE}},
    'Train': {
        'Use_Pattern_Cache': FLAG, 'Use_Packed_Store': FLAG,
        'Train_Pattern': PATTERN_ROOT, 'Eval_Pattern': PATTERN_ROOT,
        'Num_Workers': Rule("a whole number >= 0 or 'auto'", lambda value: value == 'auto' or whole_number(0).holds(value)),
        'Batch': {'Train': BATCH, 'Eval': BATCH},
        'Frame_Length': {'Min': POSITIVE, 'Max': POSITIVE},
        'Inference': {'Samples': POSITIVE, 'Frame_Length': POSITIVE, 'Overlap_Length': whole_number(0)},
        'Learning_Rate': {'Initial': number_above(0), 'Epsilon': number_above(0), 'Decay_Step': POSITIVE,
                          'Decay_Rate': number_above(0)},
        'Gradient_Norm': number_above(0), 'Max_Step': POSITIVE, 'Checkpoint_Save_Interval': POSITIVE,
        'Logging_Interval': POSITIVE, 'Evaluation_Interval': POSITIVE, 'Initial_Inference': FLAG,
        'Loss': {'Type': one_of('softmax', 'contrast'), 'Centroid': one_of('exclusive', 'inclusive')},
        'Mixed_Precision': FLAG, 'Seed': whole_number(0),
    },
    'Augmentation': {
        'Speed': SPEEDS,
        'Noise': {'Probability': PROBABILITY, 'SNR': number_range(-20, 60)},
        'Babble': {'Probability': PROBABILITY, 'SNR': number_range(-20, 60), 'Speakers': number_range(1, 64)},
        'Reverb': {'Probability': PROBABILITY, 'RT60': number_range(0.05, 3), 'Rooms': POSITIVE},
        'Time_Mask': {'Count': whole_number(0), 'Width': whole_number(0)},
        'Frequency_Mask': {'Count': whole_number(0), 'Width': whole_number(0)},
        'Seed': whole_number(0),
    },
    'Checkpoint_Path': NAME, 'Log_Path': NAME, 'Device': DEVICE,
}


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


def _check(given, schema: dict, prefix: str = '') -> None:
    """Raise HyperParameterError, naming the first key that schema does not admit."""
    if not isinstance(given, dict):
        raise HyperParameterError(f'{prefix.rstrip(".") or "the file"} is {given!r}; expected a mapping '
                                  f'(a section with the keys {", ".join(schema)})')
    for key, rule in schema.items():
        name = prefix + key
        if key not in given:
            expected = 'a section' if isinstance(rule, dict) else rule.expected
            raise HyperParameterError(f'{name} is missing; expected {expected}')
        if isinstance(rule, dict):
            _check(given[key], rule, name + '.')
        elif not rule.holds(given[key]):
            hint = (' (it is text: write the number without quotes, and 1e-3 as 1.0e-3)'
                    if _reads_as_number(given[key]) else '')
            raise HyperParameterError(f'{name} is {given[key]!r}; expected {rule.expected}{hint}')


def _reads_as_number(value) -> bool:
    try:
        return isinstance(value, str) and float(value) == float(value)
    except ValueError:
        return False


def validate(settings: dict) -> None:
    """Raise HyperParameterError naming the first bad key, its value and what is expected:
    a missing key, a wrong type, a size or interval below 1, a range upside down."""
    _check(settings, SCHEMA)
    frames, windows = settings['Train']['Frame_Length'], settings['Train']['Inference']
    if frames['Min'] > frames['Max']:
        raise HyperParameterError(f'Train.Frame_Length.Min is {frames["Min"]} but Max is {frames["Max"]}; '
                                  f'expected Min <= Max')
    if windows['Overlap_Length'] >= windows['Frame_Length']:
        raise HyperParameterError(f'Train.Inference.Overlap_Length is {windows["Overlap_Length"]}; expected less '
                                  f'than Train.Inference.Frame_Length ({windows["Frame_Length"]})')
    sound = settings['Sound']
    if sound['Frame_Length'] > (sound['Spectrogram_Dim'] - 1) * 2:
        raise HyperParameterError(f'Sound.Frame_Length is {sound["Frame_Length"]}; expected at most the FFT size '
                                  f'(Sound.Spectrogram_Dim - 1) * 2 = {(sound["Spectrogram_Dim"] - 1) * 2}')


def load_hyper_parameters(path: str = 'Hyper_Parameter.yaml') -> SimpleNamespace:
    """Read a hyper-parameter YAML file, fill in the port's defaults and return it as a namespace.

    Relative paths in the file (patterns, checkpoints, logs) stay relative to the working
    directory, as users of the seed expect.
    """
    if not os.path.exists(path):
        raise HyperParameterError(f'{path}: no such hyper-parameter file (pass another with -hp PATH)')
    if file_kinds.problem(path) is not None:
        raise HyperParameterError(f'{path}: {file_kinds.problem(path)}; pass a YAML file with -hp PATH')
    try:
        with open(path, encoding='utf-8') as stream:
            given = yaml.safe_load(stream)
    except yaml.YAMLError as error:
        raise HyperParameterError(f'{path}: not valid YAML: {error}') from None
    return hyper_parameters_from_dict(given, path)


def hyper_parameters_from_dict(given, origin: str) -> SimpleNamespace:
    """Settings as nested dicts (a YAML file's, or those a checkpoint carries) -> a namespace
    with the port's defaults filled in, validated; origin names them in error messages."""
    if not isinstance(given, dict):
        raise HyperParameterError(f'{origin}: expected a mapping of sections (Sound, Encoder, Train, ...)')
    settings = _merge(PORT_DEFAULTS, given)
    try:
        validate(settings)
    except HyperParameterError as error:
        raise HyperParameterError(f'{origin}: {error}') from None
    return to_namespace(settings)


def to_yaml(hp: SimpleNamespace) -> str:
    """hp as YAML text, in the file's order (e.g. to save beside a run's checkpoints)."""
    return yaml.safe_dump(to_dict(hp), sort_keys=False)
