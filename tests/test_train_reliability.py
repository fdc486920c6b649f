"""Train.py as a user meets its failures (issue 11): the command, its exit status, its one line,
the files left. Nothing an earlier run wrote is destroyed, unusable patterns are named and
skipped, and a run that dies after a step leaves a checkpoint."""
import os
import pathlib
import pickle
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from ge2e_speaker import checkpoints, datasets, train
from fixtures.folders import fill, read_only_folder, small_file_system
from fixtures.patterns import write_pattern_corpus
from fixtures.settings import save_hyper_parameters
from test_train import ROOT, run_script, start_training, tiny_hp


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp('corpus')
    write_pattern_corpus(str(root / 'Train'), 12, 8, frames=(60, 120), noise=2.0, seed=0)
    write_pattern_corpus(str(root / 'Eval'), 6, 6, frames=(60, 120), noise=2.0, seed=1)
    return root


@pytest.fixture(scope='module')
def finished(corpus, tmp_path_factory):
    """A 10-step run with checkpoints S_5 and S_10, and its settings file."""
    run = tmp_path_factory.mktemp('finished')
    hp = tiny_hp(corpus, run)
    train.train(hp, log=lambda message: None)
    save_hyper_parameters(hp, str(run / 'hp.yaml'))
    return hp, str(run / 'hp.yaml')


def one_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr[-2000:]
    return lines[0]


def folder_state(folder: str) -> dict:
    return {name: open(os.path.join(folder, name), 'rb').read() for name in sorted(os.listdir(folder))}


def test_a_new_run_refuses_a_folder_with_another_runs_checkpoints(finished, tmp_path):
    hp, settings = finished
    before = folder_state(hp.Checkpoint_Path)
    for extra in ([], ['--init', checkpoints.checkpoint_file(hp.Checkpoint_Path, 10)]):
        result = run_script(['Train.py', '-hp', settings] + extra)
        assert result.returncode == 1
        assert one_line(result) == (
            f'Train.py: {hp.Checkpoint_Path}: holds the checkpoints of another run (S_5.pkl to S_10.pkl), which a '
            f'new run would overwrite; resume that run with -s 10, or choose another Checkpoint_Path for the new one')
    assert folder_state(hp.Checkpoint_Path) == before                 # Hyper_Parameter.yaml too


def test_a_run_that_fails_at_start_up_leaves_the_settings_beside_the_checkpoints(corpus, finished, tmp_path):
    hp, _ = finished
    before = folder_state(hp.Checkpoint_Path)
    other = tiny_hp(corpus, pathlib.Path(os.path.dirname(hp.Checkpoint_Path)))
    other.Encoder.LSTM.Sizes = 48                                      # does not fit S_10.pkl
    save_hyper_parameters(other, str(tmp_path / 'other.yaml'))
    result = run_script(['Train.py', '-hp', str(tmp_path / 'other.yaml'), '-s', '10'])
    assert result.returncode == 1 and 'Encoder.LSTM.Sizes 48' in one_line(result)
    assert folder_state(hp.Checkpoint_Path) == before


def payload_checkpoint(path: str, marker: str) -> None:
    class Payload:
        def __reduce__(self):
            return os.system, (f'touch {marker}',)
    torch.save({'Model': Payload(), 'Steps': 1}, path)


@pytest.mark.parametrize('kind', ['truncated', 'foreign', 'not resumable', 'wrong shape', 'malicious'])
def test_resume_from_a_bad_checkpoint_is_one_line(corpus, finished, tmp_path, kind):
    hp, _ = finished
    run = tmp_path / 'run'
    shutil.copytree(os.path.dirname(hp.Checkpoint_Path), run, ignore=shutil.ignore_patterns('Log'))
    mine = tiny_hp(corpus, run)
    path = checkpoints.checkpoint_file(mine.Checkpoint_Path, 10)
    good = open(path, 'rb').read()
    expected = {'truncated': 'truncated or damaged', 'foreign': 'not a torch.save file',
                'not resumable': 'cannot be resumed', 'wrong shape': 'Encoder.LSTM.Sizes 48',
                'malicious': 'names Python code (posix.system)'}[kind]
    if kind == 'truncated':
        open(path, 'wb').write(good[:len(good) // 2])
    elif kind == 'foreign':
        open(path, 'wb').write(b'GIF89a' + bytes(range(256)) * 4)
    elif kind == 'not resumable':                       # an encoder alone, as Inference reads
        torch.save({'Model': torch.load(path, weights_only=True)['Model']}, path)
    elif kind == 'wrong shape':
        mine.Encoder.LSTM.Sizes = 48
    else:
        payload_checkpoint(path, str(tmp_path / 'ran'))
    save_hyper_parameters(mine, str(tmp_path / 'hp.yaml'))
    result = run_script(['Train.py', '-hp', str(tmp_path / 'hp.yaml'), '-s', '10'])
    line = one_line(result)
    assert result.returncode == 1 and line.startswith(f'Train.py: {path}: ') and expected in line, line
    assert 'weights_only' not in result.stderr and not (tmp_path / 'ran').exists()
    assert checkpoints.list_checkpoints(mine.Checkpoint_Path) == [5, 10]          # nothing written


def spoil(root: str, file: str, how: str) -> None:
    path = os.path.join(root, file)
    if how == 'truncated':
        data = open(path, 'rb').read()
        open(path, 'wb').write(data[:len(data) // 3])
    else:
        mel = {'40 bands': np.zeros((90, 40), np.float32), 'NaN': np.full((90, 80), np.nan, np.float32)}[how]
        with open(path, 'wb') as stream:
            pickle.dump({'Mel': mel, 'Speaker': 'X', 'Dataset': 'SYN'}, stream, protocol=4)


@pytest.mark.parametrize('workers', [0, 1])
def test_unusable_patterns_are_named_once_and_skipped(corpus, tmp_path, workers):
    shutil.copytree(corpus / 'Train', tmp_path / 'Train')
    files = sorted(os.listdir(tmp_path / 'Train' / 'SYN'))
    bad = {f'SYN/{files[0]}': 'truncated', f'SYN/{files[9]}': '40 bands', f'SYN/{files[17]}': 'NaN'}
    for file, how in bad.items():
        spoil(str(tmp_path / 'Train'), file, how)
    hp = tiny_hp(corpus, tmp_path, Max_Step=30, Checkpoint_Save_Interval=30, Num_Workers=workers)
    hp.Train.Train_Pattern.Path = str(tmp_path / 'Train')
    messages = []
    trainer = train.train(hp, log=messages.append)
    assert trainer.outcome == 'finished' and trainer.steps == 30
    skipped = [message for message in messages if message.startswith('Skipped a pattern: ')]
    assert len(skipped) == 3
    for file, why in zip(bad, ('not a readable pickle', 'Mel is [90, 40], not float [frames, 80]', 'NaN or infinite')):
        assert sum(file in message and why in message for message in skipped) == 1, (file, skipped)


def test_a_run_whose_data_goes_bad_stops_with_a_checkpoint(corpus, tmp_path):
    shutil.copytree(corpus / 'Train', tmp_path / 'Train')
    hp = tiny_hp(corpus, tmp_path, Max_Step=1000, Checkpoint_Save_Interval=1000)
    hp.Train.Train_Pattern.Path = str(tmp_path / 'Train')
    trainer = train.Trainer(hp, log=lambda message: None)
    step = trainer.train_step

    def spoil_all_after_three(mels, stop_requested=False):
        if trainer.steps == 3:
            for name in os.listdir(tmp_path / 'Train' / 'SYN'):
                open(tmp_path / 'Train' / 'SYN' / name, 'wb').write(b'gone')
        return step(mels, stop_requested)

    trainer.train_step = spoil_all_after_three
    with pytest.raises(train.TrainingError) as error:
        trainer.run()
    message = str(error.value)
    assert message.startswith('stopped at step 4: ') and 'most of the training data is bad' in message
    assert message.endswith('checkpoint S_4.pkl is saved; resume with: python Train.py -s 4')
    assert checkpoints.load_checkpoint(checkpoints.checkpoint_file(hp.Checkpoint_Path, 4))['Steps'] == 4


def children(pid: int) -> list:
    output = subprocess.run(['ps', '-o', 'pid=', '--ppid', str(pid)], capture_output=True, text=True).stdout
    return [int(field) for field in output.split()]


@pytest.mark.parametrize('killed', ['worker', 'worker and main'])
def test_a_killed_data_worker_saves_then_stops(corpus, tmp_path, killed):
    """`kill -9 WORKER`, or `pkill -f Train.py` (SIGTERM to the run and its workers at once)."""
    hp = tiny_hp(corpus, tmp_path, Max_Step=1_000_000, Checkpoint_Save_Interval=1_000_000, Num_Workers=1)
    process = start_training(hp, tmp_path, seconds=2.0)
    workers = children(process.pid)
    assert workers, 'no DataLoader worker found'
    if killed == 'worker':
        os.kill(workers[0], signal.SIGKILL)
    else:
        for pid in [process.pid] + workers:
            os.kill(pid, signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    steps = checkpoints.list_checkpoints(hp.Checkpoint_Path)
    assert len(steps) == 1 and steps[0] > 0, stderr[-2000:]
    assert checkpoints.load_checkpoint(checkpoints.checkpoint_file(hp.Checkpoint_Path, steps[0]))['Steps'] == steps[0]
    resume = f'resume with: python Train.py -hp {tmp_path}/hp.yaml -s {steps[0]}'
    assert "Traceback" not in stderr, stderr[-4000:]
    if process.returncode == 1:
        line = [line for line in stderr.splitlines() if line.startswith('Train.py: ')]
        assert len(line) == 1 and 'a data-loading worker process died' in line[0], stderr
        assert line[0].endswith(f'checkpoint S_{steps[0]}.pkl is saved; {resume}')
    else:                                                       # SIGTERM seen first: the ordinary stop
        assert process.returncode == 130 and f'SIGTERM: stopped at step {steps[0]}; {resume}' in stdout


def train_in_background(hp, tmp_path, started) -> subprocess.Popen:
    """Train.py on hp (saved as tmp_path/hp.yaml) in a child process, returned once started() holds (60 s at most)."""
    save_hyper_parameters(hp, str(tmp_path / 'hp.yaml'))
    environment = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    process = subprocess.Popen([sys.executable, 'Train.py', '-hp', str(tmp_path / 'hp.yaml')], cwd=ROOT,
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not started() and time.time() < deadline:
        time.sleep(0.1)
    return process


@pytest.mark.parametrize('kind', ['read-only', 'full'])
def test_a_checkpoint_folder_that_takes_no_files_is_found_at_start_up(corpus, tmp_path, kind):
    folder = str(tmp_path / 'Checkpoint')
    maker = read_only_folder(folder) if kind == 'read-only' else small_file_system(folder, 16)
    with maker as made:
        if made is None:
            pytest.skip(f'a {kind} folder cannot be made here')
        hp = tiny_hp(corpus, tmp_path)
        save_hyper_parameters(hp, str(tmp_path / 'hp.yaml'))
        result = run_script(['Train.py', '-hp', str(tmp_path / 'hp.yaml')])
        reason = 'Read-only file system' if os.geteuid() == 0 and kind == 'read-only' else (
            'Permission denied' if kind == 'read-only' else 'No space left on device')
        assert result.returncode == 1 and one_line(result) == (
            f'Train.py: {folder}: cannot write files there ({reason}); checkpoints cannot be saved: make it '
            f'writable, free space, or choose another Checkpoint_Path')
        assert not os.path.exists(hp.Log_Path) or not os.listdir(hp.Log_Path)


def test_a_checkpoint_folder_that_fills_up_mid_run_is_one_line(corpus, tmp_path):
    folder = str(tmp_path / 'Checkpoint')
    with small_file_system(folder, 1024) as made:
        if made is None:
            pytest.skip('a small file system cannot be mounted here')
        hp = tiny_hp(corpus, tmp_path, Max_Step=1_000_000, Checkpoint_Save_Interval=200)
        process = train_in_background(hp, tmp_path, lambda: os.path.isfile(os.path.join(folder, 'Hyper_Parameter.yaml')))
        fill(folder)
        _, stderr = process.communicate(timeout=120)
        lines = [line for line in stderr.splitlines() if line.startswith('Train.py: ')]
        assert process.returncode == 1 and 'Traceback' not in stderr and len(lines) == 1, stderr[-2000:]
        assert lines[0].startswith(f'Train.py: {folder}/S_200.pkl: cannot be written (No space left on device; 0 kB '
                                   f'free there, about ')
        assert lines[0].endswith(f' needed); free space or make {folder} writable; no checkpoint is saved; start '
                                 f'the run again once the cause is fixed')
        assert sorted(os.listdir(folder)) == ['Hyper_Parameter.yaml', 'filler']        # no half-written file


def test_a_non_finite_step_names_the_patterns_that_are_not_finite(corpus, tmp_path):
    trainer = train.Trainer(tiny_hp(corpus, tmp_path), log=lambda message: None)
    messages = []
    trainer.nonfinite.log = messages.append
    mels = torch.zeros(16, 80, 40)
    mels[3, 7, 5] = float('nan')
    files = [f'SYN/P{index}.PICKLE' for index in range(16)]
    trainer.nonfinite.skip(7, datasets.TrainingBatch(mels, files, []))
    trainer.nonfinite.skip(8, datasets.TrainingBatch(torch.zeros(16, 80, 40), files, []))
    assert messages[0].endswith('non-finite values in 1 of its patterns: SYN/P3.PICKLE')
    assert messages[1].startswith('Step 9: non-finite loss') and messages[1].endswith('its patterns are finite')
    trainer.writer.close()


def test_a_device_this_machine_lacks_is_one_line(monkeypatch):
    with pytest.raises(checkpoints.DeviceError, match="--device: 'gpu' is not a device; use cpu, cuda or cuda:N"):
        checkpoints.select_device('-1', requested='gpu')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    with pytest.raises(checkpoints.DeviceError, match=r"Device '3' \(hyper-parameters\): cuda:3: this machine has 1 "
                                                      r"CUDA device \(cuda:0 to cuda:0\)"):
        checkpoints.select_device('3')


def test_a_log_folder_that_fills_up_mid_run_is_one_line_and_the_checkpoint_is_saved(corpus, tmp_path):
    folder = str(tmp_path / 'Log')
    with small_file_system(folder, 1024) as made:
        if made is None:
            pytest.skip('a small file system cannot be mounted here')
        hp = tiny_hp(corpus, tmp_path, Max_Step=1_000_000, Checkpoint_Save_Interval=1_000_000)
        hp.Log_Path = folder
        process = train_in_background(hp, tmp_path, lambda: any(name.startswith('events') for name in os.listdir(folder)))
        fill(folder)
        try:
            _, stderr = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            pytest.fail('training went on with a full log folder: ' + stderr[-2000:])
        lines = [line for line in stderr.splitlines() if line.startswith('Train.py: ')]
        assert process.returncode == 1 and 'Traceback' not in stderr and len(lines) == 1, stderr[-2000:]
        saved = [name for name in os.listdir(hp.Checkpoint_Path) if name.startswith('S_')]
        assert len(saved) == 1, os.listdir(hp.Checkpoint_Path)         # the steps done are kept
        step = saved[0][2:-4]
        assert lines[0] == (f'Train.py: stopped at step {step}: {folder}: TensorBoard events cannot be written (No '
                            f'space left on device; 0 kB free there); checkpoint S_{step}.pkl is saved; resume with: '
                            f'python Train.py -hp {tmp_path / "hp.yaml"} -s {step}')


def test_an_event_log_gives_back_the_thread_error_hook_when_closed(tmp_path):
    import threading
    from ge2e_speaker.event_log import EventLog
    before = threading.excepthook
    log = EventLog(str(tmp_path / 'Log'))
    assert threading.excepthook == log.keep_writer_failure
    log.add_scalar('train/loss', 1.0, 1)
    log.close()
    assert threading.excepthook is before and any(name.startswith('events') for name in os.listdir(tmp_path / 'Log'))
