"""The package as a user installs it: pip install into a fresh virtual environment (torch and the
requirements already there), then, from another folder, the API and the three commands."""
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_INPUTS = ('pyproject.toml', 'README.md', 'requirements.txt', 'ge2e_speaker')   # what pip install . reads
COMMANDS = ('ge2e-pattern-generate', 'ge2e-train', 'ge2e-inference')
RECORDING = os.path.join(ROOT, 'tests', 'data', 'real_voices', '0006', '000060015.flac')
EMBED = f"""
import numpy as np, ge2e_speaker
assert not ge2e_speaker.__file__.startswith({ROOT!r}), ge2e_speaker.__file__
vector = ge2e_speaker.load_encoder(workers=0).embed_file({RECORDING!r})
assert vector.shape == (256,) and vector.dtype == np.float32 and np.isfinite(vector).all()
assert abs(np.linalg.norm(vector) - 1) < 1e-5
"""


def test_pip_install_gives_the_api_and_the_commands_from_any_folder(tmp_path):
    """A copy of the sources (the build writes build/ and *.egg-info beside them), installed
    without downloads (--no-deps --no-build-isolation: the system's torch and setuptools)."""
    source, environment, elsewhere = tmp_path / 'source', tmp_path / 'venv', tmp_path / 'elsewhere'
    source.mkdir()
    for name in BUILD_INPUTS:
        if os.path.isdir(os.path.join(ROOT, name)):
            shutil.copytree(os.path.join(ROOT, name), source / name, ignore=shutil.ignore_patterns('__pycache__'))
        else:
            shutil.copyfile(os.path.join(ROOT, name), source / name)
    subprocess.run([sys.executable, '-m', 'venv', '--system-site-packages', '--without-pip', str(environment)], check=True)
    python, scripts = environment / 'bin' / 'python', environment / 'bin'
    subprocess.run([sys.executable, '-m', 'pip', '--python', str(python), 'install', '-q', '--no-deps',
                    '--no-build-isolation', str(source)], check=True, capture_output=True, text=True, timeout=300)
    elsewhere.mkdir()
    clean = {key: value for key, value in os.environ.items() if key != 'PYTHONPATH'}
    result = subprocess.run([str(python), '-c', EMBED], cwd=elsewhere, env=clean, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        result = subprocess.run([str(scripts / command), '--help'], cwd=elsewhere, env=clean, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0 and 'usage:' in result.stdout, (command, result.stderr)


def test_the_top_folder_holds_at_most_20_entries():
    """The original's surface and a few folders: dotfiles aside, at most 20 tracked names."""
    files = subprocess.run(['git', 'ls-files'], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split('\n')
    top = {path.split('/')[0] for path in files if path and not path.startswith('.')}
    assert len(top) <= 20, sorted(top)
    assert {'Pattern_Generate.py', 'Train.py', 'Inference.py', 'Modules.py', 'Datasets.py', 'Loss.py',
            'Hyper_Parameter.yaml', 'Example_Results', 'requirements.txt', 'README.md', 'ge2e_speaker'} <= top
