"""Special files where audio, lists, pickles or checkpoints are expected: named pipes, sockets,
device nodes, folders named like audio, and links to them. Each is named in one line with what it
is, counted, and never opened; the run goes on, and a killed run leaves no worker behind.

The commands run as processes with a time limit: a FIFO that is opened blocks for ever."""
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from fixtures import corpora
from ge2e_speaker import EXAMPLE_CHECKPOINT, patterns
from test_pattern_generate import hp_file  # noqa: F401 (fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMIT_S = 120


def command(*argv, cwd=ROOT):
    """(exit status, stdout + stderr) of a project script; a hang fails the test at LIMIT_S."""
    try:
        done = subprocess.run([sys.executable, *argv], cwd=cwd, capture_output=True, text=True, timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f'{argv[0]} hung (no answer in {LIMIT_S} s): a special file was opened')
    return done.returncode, done.stdout + done.stderr


def add_special_files(folder: str) -> dict:
    """Special files under audio names in folder: {name: the phrase that describes it}."""
    os.mkfifo(os.path.join(folder, 'pipe.wav'))
    bound = socket.socket(socket.AF_UNIX)
    bound.bind(os.path.join(folder, 'socket.flac'))
    bound.close()                                  # the socket file stays
    os.symlink('/dev/zero', os.path.join(folder, 'zero.wav'))
    os.symlink(os.path.join(folder, 'pipe.wav'), os.path.join(folder, 'link-to-pipe.mp3'))
    return {'pipe.wav': 'a named pipe (FIFO), never opened', 'socket.flac': 'a socket, never opened',
            'zero.wav': 'a character device behind a symbolic link, never opened',
            'link-to-pipe.mp3': 'a named pipe (FIFO) behind a symbolic link, never opened'}


@pytest.fixture
def corpus(tmp_path):
    """Two speakers of three recordings, special files beside spk1's, and a folder named x.wav."""
    root = tmp_path / 'corpus'
    for speaker in range(2):
        for utterance in range(3):
            corpora.write(str(root / f'spk{speaker + 1}' / f'u{utterance}.wav'), corpora.voice(speaker, utterance), 16000)
    special = add_special_files(str(root / 'spk1'))
    os.makedirs(root / 'spk2' / 'folder.wav')
    return str(root), special


def test_pattern_generate_names_special_files_and_goes_on(corpus, hp_file):
    root, special = corpus
    code, out = command('Pattern_Generate.py', '-hp', hp_file, '-mw', '2', '-folder', root)
    assert code == 0, out
    for name, phrase in special.items():
        assert f'{root}/spk1/{name}: not a regular file: {phrase}' in out
    assert f'{root}/spk2/folder.wav: a folder, not an audio file, though its name ends like one' in out
    assert '6 generated, 0 skipped (already done), 4 rejected' in out and 'rejected: not a regular file: 4' in out
    train_root = os.path.join(os.path.dirname(hp_file), 'patterns', 'train')
    assert len(patterns.list_patterns(train_root)) == 6


def test_inference_names_special_files_and_goes_on(corpus, tmp_path):
    root, special = corpus
    out_dir = str(tmp_path / 'out')
    code, out = command('Inference.py', '-c', EXAMPLE_CHECKPOINT, '-i', root, '-o', out_dir, '--no-plot',
                        '--workers', '2')
    assert code == 0, out
    assert 'Embedded 6 of 10 files' in out and 'skipped: not a regular file: 4' in out
    with open(os.path.join(out_dir, 'skipped.tsv'), encoding='utf-8') as stream:
        skipped = dict(line.rstrip('\n').split('\t') for line in list(stream)[1:])
    assert skipped == {f'{root}/spk1/{name}': f'not a regular file: {phrase}' for name, phrase in special.items()}
    assert np.load(os.path.join(out_dir, 'embeddings.npy')).shape == (6, 256)


def test_a_special_file_as_list_or_trial_list_is_one_line(corpus, tmp_path):
    root, _ = corpus
    pipe = os.path.join(root, 'spk1', 'pipe.wav')
    os.mkfifo(tmp_path / 'trials.txt')
    code, out = command('Inference.py', '-c', EXAMPLE_CHECKPOINT, '-i', root, '--trials', str(tmp_path / 'trials.txt'),
                        '-o', str(tmp_path / 'out'))
    assert code == 2 and f'{tmp_path}/trials.txt: not a regular file: a named pipe (FIFO), never opened' in out
    os.mkfifo(tmp_path / 'list.txt')
    code, out = command('Inference.py', '-c', EXAMPLE_CHECKPOINT, '-i', str(tmp_path / 'list.txt'),
                        '-o', str(tmp_path / 'o2'))
    assert code == 2 and f'{tmp_path}/list.txt: not a regular file: a named pipe (FIFO), never opened' in out
    code, out = command('Inference.py', '-c', pipe, '-i', root, '-o', str(tmp_path / 'o3'))
    assert code == 2 and f'{pipe}: not a regular file: a named pipe (FIFO), never opened' in out
    code, out = command('Inference.py', '-c', EXAMPLE_CHECKPOINT, '-hp', pipe, '-i', root, '-o', str(tmp_path / 'o4'))
    assert code == 2 and f'{pipe}: not a regular file: a named pipe (FIFO), never opened' in out
    assert 'Traceback' not in out


def test_a_kaldi_list_and_a_pattern_root_with_special_files(corpus, hp_file, tmp_path):
    root, _ = corpus
    data = tmp_path / 'data'
    os.makedirs(data)
    (data / 'wav.scp').write_text(f'a {root}/spk1/u0.wav\nb {root}/spk1/pipe.wav\n')
    os.mkfifo(data / 'utt2spk')
    code, out = command('Pattern_Generate.py', '-hp', hp_file, '-kaldi', str(data))
    assert code == 2 and f'{data}/utt2spk: not a regular file: a named pipe (FIFO), never opened' in out
    os.remove(data / 'utt2spk')
    (data / 'utt2spk').write_text('a spk1\nb spk1\n')
    code, out = command('Pattern_Generate.py', '-hp', hp_file, '-kaldi', str(data))
    assert code == 0 and f'{root}/spk1/pipe.wav: not a regular file: a named pipe (FIFO)' in out, out
    # A pipe named like a pattern in the root: never read, and the metadata lists the real one.
    train_root = os.path.join(os.path.dirname(hp_file), 'patterns', 'train')
    os.mkfifo(os.path.join(train_root, 'data', 'data.SPK1.zz.PICKLE'))
    code, out = command('Pattern_Generate.py', '-hp', hp_file, '--metadata')
    assert code == 0, out
    assert patterns.load_metadata(train_root, 'METADATA.PICKLE')['File_List'] == ['data/data.SPK1.a.PICKLE']


def test_a_killed_run_leaves_no_worker(tmp_path, hp_file):
    """SIGKILL of Pattern_Generate.py while its pool works: the workers go with it."""
    root = tmp_path / 'long'
    for utterance in range(60):
        corpora.write(str(root / 'spk' / f'u{utterance}.wav'), corpora.voice(0, utterance, seconds=8), 16000)
    process = subprocess.Popen([sys.executable, 'Pattern_Generate.py', '-hp', hp_file, '-mw', '2', '-folder', str(root)],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    deadline = time.time() + 60
    while len(workers) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
        workers = children(process.pid)
    assert len(workers) == 2, 'the pool did not start'
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    deadline = time.time() + 10
    while any(alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers)


def children(pid: int) -> list:
    with open(f'/proc/{pid}/task/{pid}/children') as stream:
        return [int(child) for child in stream.read().split()]


def alive(pid: int) -> bool:
    """pid runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f'/proc/{pid}/stat') as stream:
            return stream.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False
