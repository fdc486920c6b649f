"""Inference.py as a user meets its failures (issue 11): the command, its exit status, its one
line, the files left. Outputs of two runs never mix, bad input is named and counted, and nothing
non-finite is written or scored."""
import os
import shutil

import numpy as np
import pytest
import torch

from ge2e_speaker import inference, verification
from ge2e_speaker.hyper_parameters import load_hyper_parameters
from ge2e_speaker.modules import Encoder
from fixtures.corpora import voxceleb
from fixtures.folders import fill, read_only_folder, small_file_system

HP = load_hyper_parameters('Hyper_Parameter.yaml')
TRIALS = ['1 id10001/1zcIwhmdeo4/00001.wav id10001/GWXujl-xAVM/00002.wav',
          '0 id10001/1zcIwhmdeo4/00001.wav id10002/GWXujl-xAVM/00002.wav',
          '1 id10002/1zcIwhmdeo4/00001.wav id10002/GWXujl-xAVM/00001.wav',
          '0 id10002/1zcIwhmdeo4/00002.wav id10001/GWXujl-xAVM/00001.wav']


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('vox'))
    voxceleb(root, ids=(10001, 10002), utterances=2)
    return os.path.join(root, 'wav')


def checkpoint_file(folder, nan: bool = False) -> str:
    torch.manual_seed(0)
    state = Encoder.from_hyper_parameters(HP).state_dict()
    if nan:
        state['layer_Dict.Linear.bias'][:] = float('nan')
    torch.save({'Model': state, 'Steps': 1000}, os.path.join(folder, 'S_1000.pkl'))
    shutil.copy('Hyper_Parameter.yaml', os.path.join(folder, 'Hyper_Parameter.yaml'))
    return os.path.join(folder, 'S_1000.pkl')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    return checkpoint_file(str(tmp_path_factory.mktemp('run')))


def run_cli(capsys, *argv):
    code = inference.main(['--workers', '0', '--device', 'cpu'] + [str(argument) for argument in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in err, err
    return lines[0]


def test_an_interrupted_run_leaves_the_earlier_set_whole(corpus, checkpoint, tmp_path, capsys, monkeypatch):
    out = tmp_path / 'out'
    assert run_cli(capsys, '-c', checkpoint, '-i', corpus, '-o', out, '--no-plot')[0] == 0
    before = {name: (out / name).read_bytes() for name in os.listdir(out)}
    assert sorted(before) == ['embeddings.npy', 'embeddings_index.tsv', 'skipped.tsv', 'speaker_embeddings.pickle']

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(inference, 'write_verification', interrupted)            # Ctrl-C while scoring
    (tmp_path / 'trials.txt').write_text('\n'.join(TRIALS) + '\n')
    with pytest.raises(KeyboardInterrupt):
        run_cli(capsys, '-c', checkpoint, '-i', os.path.join(corpus, 'id10001'), '--trials', tmp_path / 'trials.txt',
                '--root', corpus, '-o', out, '--no-plot')
    assert {name: (out / name).read_bytes() for name in os.listdir(out)} == before      # no staging left either
    os.makedirs(out / '.partial-999999999')                                         # a killed run's
    monkeypatch.undo()
    code, stdout, err = run_cli(capsys, '-c', checkpoint, '--trials', tmp_path / 'trials.txt', '--root', corpus,
                                '-o', out)
    assert code == 0, err
    assert sorted(os.listdir(out)) == ['det.png', 'score_histogram.png', 'scores.txt', 'verification.json']   # one run's set
    assert (f'Wrote scores.txt, verification.json, det.png, score_histogram.png in {out} (the files of an earlier run there were removed: '
            f'embeddings.npy, embeddings_index.tsv, speaker_embeddings.pickle, skipped.tsv)') in stdout


@pytest.mark.parametrize('kind', ['a file', 'read-only', 'full'])
def test_an_output_folder_that_takes_no_files_is_one_line(corpus, checkpoint, tmp_path, capsys, kind):
    out = str(tmp_path / 'out')
    if kind == 'a file':
        open(out, 'w').close()
        maker, reason = None, 'is a file, not a folder'
    elif kind == 'read-only':
        maker = read_only_folder(out)
        reason = f'cannot write files there ({"Read-only file system" if os.geteuid() == 0 else "Permission denied"})'
    else:
        maker, reason = small_file_system(out, 16), 'cannot write files there (No space left on device)'
    with maker if maker is not None else open(os.devnull) as made:
        if made is None:
            pytest.skip(f'a {kind} folder cannot be made here')
        code, _, err = run_cli(capsys, '-c', checkpoint, '-i', corpus, '-o', out)
    assert code == 2 and error_line(err) == f'Inference.py: {out}: {reason}; choose another output folder with -o'


@pytest.mark.parametrize('flag, value, message', [
    ('--batch', '0', "argument --batch: '0' is not a whole number >= 1"),
    ('--workers', '-1', "argument --workers: '-1' is not a whole number >= 0"),
    ('--threads', 'two', "argument --threads: 'two' is not a whole number >= 1"),
])
def test_bad_numbers_are_one_line(checkpoint, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exit_status:
        inference.main(['-c', checkpoint, '-i', 'x.wav', flag, value])
    assert exit_status.value.code == 2 and capsys.readouterr().err.strip().endswith(f'error: {message}')


def test_a_device_that_is_not_here_is_one_line(corpus, checkpoint, tmp_path, capsys):
    code, _, err = run_cli(capsys, '-c', checkpoint, '-i', corpus, '-o', tmp_path, '--device', 'gpu')
    assert code == 2 and error_line(err) == "Inference.py: --device: 'gpu' is not a device; use cpu, cuda or cuda:N"
    if not torch.cuda.is_available():
        code, _, err = run_cli(capsys, '-c', checkpoint, '-i', corpus, '-o', tmp_path, '--device', 'cuda:3')
        assert code == 2 and error_line(err) == ('Inference.py: --device: cuda:3 asks for CUDA, which is not '
                                                 'available here; use cpu')


def test_an_export_path_that_cannot_be_written_is_one_line(checkpoint, tmp_path, capsys):
    code, _, err = run_cli(capsys, '-c', checkpoint, '--export-torchscript', tmp_path)
    assert code == 2 and error_line(err) == (f'Inference.py: --export-torchscript {tmp_path}: is a folder; give a '
                                             f'file path in a writable folder')
    with read_only_folder(str(tmp_path / 'ro')) as folder:
        if folder is None:
            pytest.skip('a read-only folder cannot be made here')
        code, _, err = run_cli(capsys, '-c', checkpoint, '--export-onnx', f'{folder}/encoder.onnx')
    assert code == 2 and error_line(err).startswith(f'Inference.py: --export-onnx {folder}: cannot write files there')


def test_list_and_trial_files_in_other_encodings(corpus, checkpoint, tmp_path, capsys):
    first = os.path.join(corpus, 'id10001', '1zcIwhmdeo4', '00001.wav')
    (tmp_path / 'latin1.txt').write_bytes(f'{first} Jos\xe9\n'.encode('latin-1'))
    (tmp_path / 'binary.lst').write_bytes(np.zeros(64, np.float32).tobytes())
    for name, why in (('latin1.txt', 'not UTF-8 text'), ('binary.lst', 'it holds binary data')):
        code, _, err = run_cli(capsys, '-c', checkpoint, '-i', tmp_path / name, '-o', tmp_path / 'out')
        assert code == 2 and why in error_line(err) and f'{tmp_path / name}: ' in err
    (tmp_path / 'bom.txt').write_bytes(f'\ufeff{first} José\n'.encode('utf-8'))
    code, _, err = run_cli(capsys, '-c', checkpoint, '-i', tmp_path / 'bom.txt', '-o', tmp_path / 'out', '--no-plot')
    assert code == 0, err
    assert (tmp_path / 'out' / 'embeddings_index.tsv').read_text().splitlines()[1] == f'{first}\tJosé'

    (tmp_path / 'trials.txt').write_bytes(('\ufeff' + '\n'.join(TRIALS) + '\n').encode('utf-8'))
    code, out, err = run_cli(capsys, '-c', checkpoint, '--trials', tmp_path / 'trials.txt', '--root', corpus,
                             '-o', tmp_path / 'trials')
    assert code == 0 and 'over 4 of 4 trials' in out, err
    (tmp_path / 'trials.txt').write_bytes(b'1 caf\xe9/1.wav caf\xe9/2.wav\n')
    code, _, err = run_cli(capsys, '-c', checkpoint, '--trials', tmp_path / 'trials.txt', '-o', tmp_path / 'trials')
    assert code == 2 and 'not UTF-8 text' in error_line(err)


def test_bad_names_and_link_loops_in_an_input_folder(corpus, checkpoint, tmp_path, capsys):
    folder = tmp_path / 'in'
    shutil.copytree(os.path.join(corpus, 'id10001'), folder / 'id10001')
    shutil.copy(folder / 'id10001' / '1zcIwhmdeo4' / '00001.wav', os.fsencode(folder / 'id10001') + b'/caf\xe9.wav')
    os.symlink('..', folder / 'id10001' / 'loop')
    code, out, err = run_cli(capsys, '-c', checkpoint, '-i', folder, '-o', tmp_path / 'out', '--no-plot')
    assert code == 0, err
    assert f'{folder}/id10001/caf\\xe9.wav: file name not UTF-8: left out; rename it to embed it' in out
    assert f'{folder}/id10001/loop: not walked: a symbolic link to {folder}' in out
    assert 'Embedded 4 of 4 files' in out


def test_trial_paths_that_leave_the_root_are_reported(corpus, checkpoint, tmp_path, capsys):
    outside = os.path.join(corpus, 'id10001', '1zcIwhmdeo4', '00001.wav')
    trials = TRIALS + [f'1 ../wav/id10001/1zcIwhmdeo4/00001.wav {outside}']
    (tmp_path / 'trials.txt').write_text('\n'.join(trials) + '\n')
    code, out, err = run_cli(capsys, '-c', checkpoint, '--trials', tmp_path / 'trials.txt', '--root', corpus,
                             '-o', tmp_path / 'out')
    assert code == 0, err
    for path in ('../wav/id10001/1zcIwhmdeo4/00001.wav', outside):
        assert f'trial file not embedded: {path}: outside --root {corpus}: trial paths are relative to it' in out
    assert 'over 4 of 5 trials (1 skipped: they name 2 files that could not be embedded)' in out


def test_non_finite_embeddings_are_refused_and_never_scored(corpus, tmp_path, capsys):
    checkpoint = checkpoint_file(str(tmp_path), nan=True)
    code, out, err = run_cli(capsys, '-c', checkpoint, '-i', corpus, '-o', tmp_path / 'out', '--no-plot')
    assert code == 0, err
    assert out.count('non-finite embedding (NaN or infinite values)') == 8 + 1 and 'Embedded 0 of 8 files' in out
    assert '  skipped: non-finite embedding (NaN or infinite values): 8' in out      # the summary's count
    assert np.load(tmp_path / 'out' / 'embeddings.npy').shape == (0, 256)
    assert (tmp_path / 'out' / 'skipped.tsv').read_text().count('non-finite embedding') == 8
    (tmp_path / 'trials.txt').write_text('\n'.join(TRIALS) + '\n')
    code, _, err = run_cli(capsys, '-c', checkpoint, '--trials', tmp_path / 'trials.txt', '--root', corpus,
                           '-o', tmp_path / 'out')
    assert code == 2 and 'Traceback' not in err and err.strip().splitlines()[-1] == (
        'Inference.py: 0 trials could be scored (4 skipped); EER needs both target and non-target trials')
    assert os.listdir(tmp_path / 'out') != []                                # the earlier set stays whole
    unit = np.eye(4, dtype=np.float32)
    result = verification.score_trials(
        [(1, 'a', 'b'), (0, 'a', 'c'), (1, 'c', 'd'), (0, 'b', 'd')],
        {'a': unit[0], 'b': unit[0], 'c': unit[1], 'd': np.full(4, np.nan, np.float32)})
    assert len(result.trials) == 2 and len(result.skipped_trials) == 2 and 'non-finite' in result.unusable_files['d']


def test_an_output_folder_that_fills_mid_run_is_one_line(corpus, checkpoint, tmp_path, capsys):
    """The start-up probe passes, then the embeddings do not fit: one line with the space there, the
    earlier set whole, and a rerun once there is space completes."""
    files = sorted(os.path.join(folder, name) for folder, _, names in os.walk(corpus) for name in names)
    listing = tmp_path / 'many.txt'
    listing.write_text(''.join(f'{path} speaker{index % 2}\n' for index in range(50) for path in files))   # 400 rows
    out = str(tmp_path / 'out')
    with small_file_system(out, 2048) as made:
        if made is None:
            pytest.skip('a small file system cannot be mounted here')
        assert run_cli(capsys, '-c', checkpoint, '-i', listing, '-o', out, '--no-plot')[0] == 0
        earlier = np.load(os.path.join(out, 'embeddings.npy'))
        fill(out)
        filler = os.path.join(out, 'filler')
        os.truncate(filler, os.path.getsize(filler) - 100 * 1024)       # room for the probe, not for the set
        code, _, err = run_cli(capsys, '-c', checkpoint, '-i', listing, '-o', out, '--no-plot')
        line = [line for line in err.strip().split('\r')[-1].splitlines() if not line.startswith('Embedding')]
        assert code == 2 and len(line) == 1 and 'Traceback' not in err, err
        assert line[0].startswith('Inference.py: ') and 'cannot be written (No space left on device; ' in line[0]
        assert ' kB free there): the earlier outputs there are whole; ' in line[0]
        assert np.array_equal(np.load(os.path.join(out, 'embeddings.npy')), earlier)
        assert sorted(os.listdir(out)) == ['embeddings.npy', 'embeddings_index.tsv', 'filler', 'skipped.tsv',
                                           'speaker_embeddings.pickle']
        os.remove(filler)
        assert run_cli(capsys, '-c', checkpoint, '-i', listing, '-o', out)[0] == 0
        assert os.path.isfile(os.path.join(out, 'tsne.png'))
