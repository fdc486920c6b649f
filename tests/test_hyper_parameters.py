"""Hyper_Parameter.yaml: seed files load unchanged; every bad value stops with one line."""
import ast
import copy
import os

import pytest
import yaml

from ge2e_speaker import pattern_generate, train
from ge2e_speaker.hyper_parameters import load_hyper_parameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, 'Hyper_Parameter.yaml'), encoding='utf-8') as _stream:
    SETTINGS = yaml.safe_load(_stream)


def edited(tmp_path, key: str, value, delete: bool = False) -> str:
    """A copy of Hyper_Parameter.yaml with one key set (or deleted); returns its path."""
    settings = copy.deepcopy(SETTINGS)
    *sections, last = key.split('.')
    node = settings
    for section in sections:
        node = node[section]
    if delete:
        del node[last]
    else:
        node[last] = value
    path = tmp_path / 'hp.yaml'
    path.write_text(yaml.safe_dump(settings), encoding='utf-8')
    return str(path)


@pytest.mark.parametrize('path', ['Hyper_Parameter.yaml', 'demo_corpus/Hyper_Parameter_Demo.yaml',
                                  'Example_Results/Synthetic/Checkpoint/Hyper_Parameter.yaml', 'recipes/real_voices.yaml'])
def test_the_shipped_files_load(path):
    assert load_hyper_parameters(os.path.join(ROOT, path)).Train.Max_Step > 0


def test_a_seed_file_without_the_port_keys_loads(tmp_path):
    settings = copy.deepcopy(SETTINGS)
    for section, keys in {'Sound': ('Trim_Top_dB', 'Inference_Top_dB', 'Min_Frames', 'Inference_Min_Frames'),
                          'Train': ('Loss', 'Mixed_Precision')}.items():
        for key in keys:
            del settings[section][key]
    (tmp_path / 'seed.yaml').write_text(yaml.safe_dump(settings), encoding='utf-8')
    hp = load_hyper_parameters(str(tmp_path / 'seed.yaml'))
    assert hp.Sound.Trim_Top_dB.VCTK == 15 and hp.Train.Loss.Centroid == 'exclusive'
    assert hp.Sound.Inference_Min_Frames == 16


@pytest.mark.parametrize('key, value, message', [
    ('Train.Max_Step', 'ten', "Train.Max_Step is 'ten'; expected a whole number >= 1"),
    ('Train.Max_Step', '100', "Train.Max_Step is '100'; expected a whole number >= 1 (it is text: write the number without quotes"),
    ('Train.Max_Step', 1.5, 'Train.Max_Step is 1.5; expected a whole number >= 1'),
    ('Train.Max_Step', True, 'Train.Max_Step is True; expected a whole number >= 1'),
    ('Train.Batch.Train.Speaker', 0, 'Train.Batch.Train.Speaker is 0; expected a whole number >= 1'),
    ('Train.Checkpoint_Save_Interval', -5, 'Train.Checkpoint_Save_Interval is -5; expected a whole number >= 1'),
    ('Train.Num_Workers', -1, 'Train.Num_Workers is -1; expected a whole number >= 0'),
    ('Train.Learning_Rate.Initial', '1e-3', "Train.Learning_Rate.Initial is '1e-3'; expected a number > 0 (it is text"),
    ('Train.Learning_Rate.Decay_Rate', 0, 'Train.Learning_Rate.Decay_Rate is 0; expected a number > 0'),
    ('Sound.Mel_Dim', None, 'Sound.Mel_Dim is None; expected a whole number >= 1'),
    ('Sound.Trim_Top_dB', 15, 'Sound.Trim_Top_dB is 15; expected a mapping (a section with the keys VCTK, VC1, VC2, Libri, CMUA, Default)'),
    ('Train.Batch', 64, 'Train.Batch is 64; expected a mapping (a section with the keys Train, Eval)'),
    ('Train.Loss.Type', 'triplet', "Train.Loss.Type is 'triplet'; expected softmax or contrast"),
    ('Train.Mixed_Precision', 'yes please', "Train.Mixed_Precision is 'yes please'; expected true or false"),
    ('Train.Train_Pattern.Path', '', "Train.Train_Pattern.Path is ''; expected text: a path or file name"),
    ('Device', 'gpu', "Device is 'gpu'; expected '-1' (the CPU) or a CUDA index such as '0'"),
    ('Train.Frame_Length.Min', 200, 'Train.Frame_Length.Min is 200 but Max is 180; expected Min <= Max'),
    ('Train.Inference.Overlap_Length', 64, 'Train.Inference.Overlap_Length is 64; expected less than Train.Inference.Frame_Length (64)'),
    ('Sound.Frame_Length', 4096, 'Sound.Frame_Length is 4096; expected at most the FFT size (Sound.Spectrogram_Dim - 1) * 2 = 2048'),
])
def test_a_bad_value_is_one_line(tmp_path, capsys, key, value, message):
    path = edited(tmp_path, key, value)
    assert pattern_generate.main(['-hp', path, '--metadata']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(f'{path}: {message}')


@pytest.mark.parametrize('key, message', [
    ('Train.Max_Step', 'Train.Max_Step is missing; expected a whole number >= 1'),
    ('Encoder', 'Encoder is missing; expected a section'),
    ('Train.Batch.Eval', 'Train.Batch.Eval is missing; expected a section'),
])
def test_a_missing_key_is_one_line(tmp_path, capsys, key, message):
    path = edited(tmp_path, key, None, delete=True)
    assert train.main(['-hp', path]) == 1
    err = capsys.readouterr().err
    assert err == f'Train.py: {path}: {message}\n'


def test_hyper_parameters_import_nothing_of_the_project():
    """hyper_parameters.py is read by every script: besides the library it imports only
    file_kinds.py (its YAML is written by checkpoints.py), and atomic_files.py and file_kinds.py
    import nothing of the project."""
    package = os.path.join(ROOT, 'ge2e_speaker')
    project = {name[:-3] for name in os.listdir(package) if name.endswith('.py')} | {'ge2e_speaker'}
    allowed = {'hyper_parameters': {'file_kinds'}, 'atomic_files': set(), 'file_kinds': set()}
    for module, allowed_imports in allowed.items():
        with open(os.path.join(package, f'{module}.py'), encoding='utf-8') as stream:
            tree = ast.parse(stream.read())
        imported = {alias.name.split('.')[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module.split('.')[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        relative = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level
                    for alias in node.names}
        assert not imported & project and relative <= allowed_imports, (module, relative)
