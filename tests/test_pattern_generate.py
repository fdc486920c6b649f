"""Pattern_Generate.py on tiny corpora in each real layout."""
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ge2e_speaker import atomic_files, audio, pattern_generate, patterns
from ge2e_speaker.hyper_parameters import load_hyper_parameters
from fixtures import corpora
from fixtures.folders import fill, small_file_system
from fixtures.settings import save_hyper_parameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def hp_file(tmp_path):
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    hp.Train.Train_Pattern.Path = str(tmp_path / 'patterns' / 'train')
    hp.Train.Eval_Pattern.Path = str(tmp_path / 'patterns' / 'eval')
    path = str(tmp_path / 'hp.yaml')
    save_hyper_parameters(hp, path)
    return path


def run(hp_file, *arguments):
    assert pattern_generate.main(['-hp', hp_file, '-mw', '1', *arguments]) == 0
    return load_hyper_parameters(hp_file)


def metadata_of(root):
    return patterns.load_metadata(root, 'METADATA.PICKLE')


def assert_consistent(root):
    """The metadata lists exactly the patterns on disk, with their true lengths and labels."""
    metadata = metadata_of(root)
    assert metadata['File_List'] == patterns.list_patterns(root)
    for file in metadata['File_List']:
        pattern = patterns.load_pickle(os.path.join(root, file))
        assert pattern['Mel'].shape == (metadata['Mel_Length_Dict'][file], 80)
        assert pattern['Speaker'] == metadata['Speaker_Dict'][file]
        assert pattern['Dataset'] == metadata['Dataset_Dict'][file]
    return metadata


@pytest.mark.parametrize('flag, build, dataset, expected', [
    ('-vctk', corpora.vctk_080, 'VCTK', {('VCTK', 'P225'): 3, ('VCTK', 'P226'): 3}),
    ('-vctk', corpora.vctk_092, 'VCTK', {('VCTK', 'P225'): 3, ('VCTK', 'P226'): 3}),
    ('-libri', corpora.libritts, 'Libri', {('Libri', '19'): 3, ('Libri', '26'): 3}),
    ('-cmua', corpora.cmu_arctic, 'CMUA', {('CMUA', 'BDL'): 3, ('CMUA', 'SLT'): 3}),
    ('-vc1', corpora.voxceleb, 'VC1', {('VC1', 'ID10001'): 4, ('VC1', 'ID10002'): 4}),
])
def test_each_layout(tmp_path, hp_file, flag, build, dataset, expected):
    hp = run(hp_file, flag, build(str(tmp_path / 'corpus')))
    metadata = assert_consistent(hp.Train.Train_Pattern.Path)
    assert {key: len(files) for key, files in metadata['File_List_by_Speaker_Dict'].items()} == expected
    assert all(file.startswith(f'{dataset}/{dataset}.') for file in metadata['File_List'])
    assert not os.path.exists(hp.Train.Eval_Pattern.Path)


def test_names_follow_the_seed(tmp_path, hp_file):
    hp = run(hp_file, '-vctk', corpora.vctk_092(str(tmp_path / 'vctk'), speakers=(225,), utterances=1),
             '-vc1', corpora.voxceleb(str(tmp_path / 'vox'), ids=(10001,), videos=('1zcIwhmdeo4',), utterances=1))
    # mic1 only, one pattern per utterance; VoxCeleb's video folder kept as a tag
    assert patterns.list_patterns(hp.Train.Train_Pattern.Path) == [
        'VC1/VC1.ID10001.1zcIwhmdeo4.00001.PICKLE', 'VCTK/VCTK.P225.p225_001.PICKLE']


def test_voxceleb1_test_set_alone_goes_to_eval(tmp_path, hp_file):
    hp = run(hp_file, '-vc1t', corpora.voxceleb(str(tmp_path / 'vox1_test'), ids=(10270, 10271)))
    metadata = assert_consistent(hp.Train.Eval_Pattern.Path)
    assert set(metadata['File_List_by_Speaker_Dict']) == {('VC1', 'ID10270'), ('VC1', 'ID10271')}
    assert not os.path.exists(hp.Train.Train_Pattern.Path)


@pytest.mark.skipif(not corpora.has_ffmpeg(), reason='ffmpeg not installed')
def test_voxceleb2_m4a_under_dev(tmp_path, hp_file):
    corpus = corpora.voxceleb(str(tmp_path / 'vox2' / 'dev'), ids=(12, 13), videos=('abc',), extension='m4a')
    hp = run(hp_file, '-vc2', str(tmp_path / 'vox2'))
    metadata = assert_consistent(hp.Train.Train_Pattern.Path)
    assert set(metadata['File_List_by_Speaker_Dict']) == {('VC2', 'ID12'), ('VC2', 'ID13')} and corpus


def test_missing_ffmpeg_is_said_once(tmp_path, hp_file, monkeypatch, capsys):
    root = tmp_path / 'vox2' / 'aac' / 'id00012' / 'abc'
    root.mkdir(parents=True)
    for index in range(3):
        (root / f'{index:05d}.m4a').write_bytes(b'not decoded')
    monkeypatch.setattr(pattern_generate.shutil, 'which', lambda name: None)
    run(hp_file, '-vc2', str(tmp_path / 'vox2'))
    output = capsys.readouterr()
    text = output.out + output.err
    assert text.count('ffmpeg is not installed') == 1 and '3 .m4a files' in text
    assert 'rejected: needs ffmpeg: 3' in text


def test_bad_inputs_are_named_counted_and_skipped(tmp_path, hp_file, capsys):
    corpus = corpora.vctk_080(str(tmp_path / 'vctk'), speakers=(225,), utterances=2)
    folder = f'{corpus}/wav48/p225'
    corpora.write(f'{folder}/p225_101.wav', np.zeros(0, np.float32), 48000)
    corpora.write(f'{folder}/p225_102.wav', np.zeros(48000, np.float32), 48000)
    corpora.write(f'{folder}/p225_103.wav', corpora.voice(0, 1, seconds=0.3, rate=48000), 48000)
    with open(f'{folder}/p225_104.wav', 'wb') as stream:
        stream.write(b'RIFF....WAVEfmt garbage')
    nan = corpora.voice(0, 2, rate=48000)
    nan[20000] = np.nan
    corpora.write(f'{folder}/p225_105.wav', nan, 48000, 'FLOAT')
    hp = run(hp_file, '-vctk', corpus)
    output = capsys.readouterr()
    text = output.out + output.err
    for name, reason in (('p225_101', 'empty'), ('p225_102', 'silent'), ('p225_103', 'too short'),
                         ('p225_104', 'unreadable'), ('p225_105', 'non-finite samples')):
        lines = [line for line in text.splitlines() if f'{name}.wav:' in line]
        assert len(lines) == 1 and f'{name}.wav: {reason}' in lines[0]
    assert '2 generated, 0 skipped (already done), 5 rejected' in text
    for reason in ('empty', 'silent', 'too short', 'unreadable', 'non-finite samples'):
        assert f'rejected: {reason}: 1' in text
    assert len(assert_consistent(hp.Train.Train_Pattern.Path)['File_List']) == 2


def test_rerun_skips_finished_files(tmp_path, hp_file, capsys):
    corpus = corpora.cmu_arctic(str(tmp_path / 'cmu'))
    hp = run(hp_file, '-cmua', corpus)
    first = metadata_of(hp.Train.Train_Pattern.Path)
    os.remove(os.path.join(hp.Train.Train_Pattern.Path, first['File_List'][0]))
    capsys.readouterr()
    run(hp_file, '-cmua', corpus)
    assert '1 generated, 5 skipped (already done), 0 rejected' in capsys.readouterr().out
    assert assert_consistent(hp.Train.Train_Pattern.Path) == first


def test_shards_split_without_overlap_and_merge(tmp_path, hp_file):
    corpus = corpora.libritts(str(tmp_path / 'libri'), speakers=(19, 26, 27), utterances=3)
    hp = run(hp_file, '-libri', corpus, '--shard', '0/2')
    root = hp.Train.Train_Pattern.Path
    first = set(patterns.list_patterns(root))
    assert not os.path.exists(os.path.join(root, 'METADATA.PICKLE'))
    run(hp_file, '-libri', corpus, '--shard', '1/2')
    both = set(patterns.list_patterns(root))
    assert len(first) == 5 and len(both) == 9
    run(hp_file, '--metadata')
    assert len(assert_consistent(root)['File_List']) == 9
    with pytest.raises(SystemExit):
        pattern_generate.main(['-hp', hp_file, '-libri', corpus, '--shard', '2/2'])


def test_a_killed_run_leaves_no_broken_pattern_and_resumes(tmp_path, hp_file):
    corpus = corpora.vctk_080(str(tmp_path / 'vctk'), speakers=tuple(range(225, 233)), utterances=10)
    hp = load_hyper_parameters(hp_file)
    root = hp.Train.Train_Pattern.Path
    command = [sys.executable, os.path.join(ROOT, 'Pattern_Generate.py'), '-hp', hp_file, '-vctk', corpus, '-mw', '2']
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(patterns.list_patterns(root) if os.path.isdir(f'{root}/VCTK') else []) < 10:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = patterns.list_patterns(root)
    assert 10 <= len(finished) < 80
    for file in finished:   # every finished name is a whole pattern
        assert patterns.load_pickle(os.path.join(root, file))['Mel'].shape[1] == 80
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f'{80 - len(finished)} generated, {len(finished)} skipped (already done), 0 rejected' in result.stdout
    metadata = assert_consistent(root)
    assert len(metadata['File_List']) == 80 and len(metadata['File_List_by_Speaker_Dict']) == 8
    assert not [name for name in os.listdir(f'{root}/VCTK') if '.tmp-' in name]


def test_metadata_without_patterns_says_so(hp_file, capsys):
    assert pattern_generate.main(['-hp', hp_file, '--metadata']) == 1
    assert 'no pattern folder at' in capsys.readouterr().err


def test_no_corpus_is_an_error(hp_file, capsys):
    with pytest.raises(SystemExit):
        pattern_generate.main(['-hp', hp_file])
    assert 'name at least one corpus' in capsys.readouterr().err


def test_same_name_sources_keep_one_by_rule(tmp_path, hp_file, capsys):
    """p225_001.wav and p225_001.flac map to one pattern: the .wav is used, the .flac named and counted."""
    corpus = corpora.vctk_080(str(tmp_path / 'vctk'), speakers=(225,), utterances=2)
    flac = corpora.write(f'{corpus}/wav48/p225/p225_001.flac', corpora.voice(5, 5, rate=48000), 48000)
    assert pattern_generate.main(['-hp', hp_file, '-mw', '2', '-vctk', corpus]) == 0
    hp = load_hyper_parameters(hp_file)
    text = capsys.readouterr().out
    wav = f'{corpus}/wav48/p225/p225_001.wav'
    assert f'{flac}: same recording as {wav} (VCTK/VCTK.P225.p225_001.PICKLE): that one is used' in text
    assert '2 generated, 0 skipped (already done), 1 rejected' in text and 'rejected: same recording: 1' in text
    pattern = patterns.load_pickle(f'{hp.Train.Train_Pattern.Path}/VCTK/VCTK.P225.p225_001.PICKLE')
    np.testing.assert_array_equal(pattern['Mel'], audio.mel_from_file(wav, hp.Sound, 15))
    assert len(assert_consistent(hp.Train.Train_Pattern.Path)['File_List']) == 2


def test_same_name_choice_ignores_job_order():
    jobs = [pattern_generate.Job(f'/c/{folder}/p225_001.{extension}', 'VCTK', 'P225', 'VCTK/VCTK.P225.p225_001.PICKLE', '/p')
            for folder in ('b', 'a') for extension in ('m4a', 'flac', 'wav')]
    for order in (jobs, jobs[::-1], jobs[2:] + jobs[:2]):
        kept, dropped = pattern_generate.drop_same_name_sources(order, log=lambda line: None)
        assert [job.audio_path for job in kept] == ['/c/a/p225_001.wav'] and dropped == 5


def test_a_non_utf8_file_name_is_one_line(tmp_path, hp_file, capsys):
    corpus = corpora.vctk_080(str(tmp_path / 'vctk'), speakers=(225,), utterances=2)
    shutil.copy(os.fsencode(f'{corpus}/wav48/p225/p225_001.wav'), os.fsencode(f'{corpus}/wav48/p225/') + b'p225_\xe9t\xe9.wav')
    hp = run(hp_file, '-vctk', corpus)
    text = capsys.readouterr().out
    assert f'{corpus}/wav48/p225/p225_\\xe9t\\xe9.wav: file name not UTF-8' in text
    assert '2 generated, 0 skipped (already done), 1 rejected' in text and 'rejected: file name not UTF-8: 1' in text
    assert len(assert_consistent(hp.Train.Train_Pattern.Path)['File_List']) == 2


def test_a_symlink_loop_in_the_corpus_is_one_line(tmp_path, hp_file):
    corpus = corpora.vctk_080(str(tmp_path / 'vctk'), speakers=(225, 226), utterances=2)
    os.symlink('..', f'{corpus}/wav48/p225/back')          # wav48/p225/back -> wav48: a loop
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'Pattern_Generate.py'), '-hp', hp_file, '-mw', '1',
                             '-vctk', corpus], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count('a link loop?') == 1
    assert f'{corpus}/wav48/p225/back: not walked: a symbolic link to {corpus}/wav48, which is walked already' in result.stdout
    assert '4 generated' in result.stdout and 'Traceback' not in result.stderr


def test_regenerated_patterns_never_take_a_stale_record(tmp_path, hp_file):
    """Patterns regenerated with other settings: the metadata gives their new lengths, even when
    the old run's record file sorts after the new one by name (the old merge order)."""
    corpus = corpora.vctk_080(str(tmp_path / 'vctk'), speakers=(225,), utterances=3)
    hp = run(hp_file, '-vctk', corpus)
    root = hp.Train.Train_Pattern.Path
    first = metadata_of(root)['Mel_Length_Dict']
    [old_records] = os.listdir(f'{root}/.records')
    os.rename(f'{root}/.records/{old_records}', f'{root}/.records/zzzz-99999.tsv')
    shutil.rmtree(f'{root}/VCTK')
    hp.Sound.Frame_Shift = 128   # twice the frames
    save_hyper_parameters(hp, hp_file)
    run(hp_file, '-vctk', corpus)
    second = assert_consistent(root)['Mel_Length_Dict']
    assert second.keys() == first.keys() and all(second[file] > first[file] for file in first)


def test_a_pattern_rewritten_without_a_record_is_read_again(tmp_path, hp_file, capsys):
    hp = run(hp_file, '-cmua', corpora.cmu_arctic(str(tmp_path / 'cmu'), speakers=('bdl',), utterances=2))
    root = hp.Train.Train_Pattern.Path
    file = metadata_of(root)['File_List'][0]
    time.sleep(0.01)   # another tool rewrites it later: other frames, no record
    atomic_files.write_atomically(f'{root}/{file}', patterns.pattern_bytes(np.zeros((7, 80), np.float32), 'BDL', 'CMUA'))
    run(hp_file, '--metadata')
    assert assert_consistent(root)['Mel_Length_Dict'][file] == 7


def test_malformed_patterns_are_named_and_left_out(tmp_path, hp_file, capsys):
    """A pattern whose Mel is not [frames, Mel_Dim] never reaches the metadata, at --metadata or after a run."""
    hp = run(hp_file, '-cmua', corpora.cmu_arctic(str(tmp_path / 'cmu'), speakers=('bdl',), utterances=2))
    root = hp.Train.Train_Pattern.Path
    bad = {'one_d': np.zeros(120, np.float32), 'forty': np.zeros((120, 40), np.float32), 'empty': np.zeros((0, 80), np.float32)}
    for stem, mel in bad.items():
        with open(f'{root}/CMUA/{patterns.pattern_name("CMUA", "bdl", stem)}', 'wb') as stream:   # as a seed-era tool writes
            pickle.dump({'Mel': mel, 'Speaker': 'BDL', 'Dataset': 'CMUA'}, stream, protocol=4)
    capsys.readouterr()
    run(hp_file, '--metadata')
    text = capsys.readouterr().out
    for stem, shape in (('one_d', '[120]'), ('forty', '[120, 40]'), ('empty', '[0, 80]')):
        assert f'{root}/CMUA/CMUA.BDL.{stem}.PICKLE: left out of the metadata: Mel is {shape}; expected [frames >= 1, 80]' in text
    assert '2 patterns of 1 speakers (3 unreadable or malformed patterns left out)' in text
    assert len(metadata_of(root)['File_List']) == 2
    run(hp_file, '-cmua', str(tmp_path / 'cmu'))   # the build after a run checks them too
    assert '(3 unreadable or malformed patterns left out)' in capsys.readouterr().out


def test_two_runs_at_once_leave_each_other_alone(tmp_path, hp_file):
    """While run A writes (held stopped mid-way), run B on the same output and --metadata neither
    delete A's half-written files nor stop it; --metadata says why it waits. A then finishes."""
    root = load_hyper_parameters(hp_file).Train.Train_Pattern.Path
    script = [sys.executable, os.path.join(ROOT, 'Pattern_Generate.py'), '-hp', hp_file]
    first = subprocess.Popen(script + ['-mw', '2', '-vctk', corpora.vctk_080(str(tmp_path / 'vctk'), speakers=(225, 226, 227), utterances=10)],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(patterns.list_patterns(root) if os.path.isdir(f'{root}/VCTK') else []) < 2:
        time.sleep(0.02)
    os.killpg(first.pid, signal.SIGSTOP)
    half_written = f'{root}/VCTK/VCTK.P225.p225_999.PICKLE.tmp-{first.pid}'   # as if A were writing it now
    open(half_written, 'wb').close()
    try:
        second = subprocess.run(script + ['-mw', '1', '-cmua', corpora.cmu_arctic(str(tmp_path / 'cmu'))],
                                cwd=ROOT, capture_output=True, text=True, timeout=120)
        metadata = subprocess.run(script + ['--metadata'], cwd=ROOT, capture_output=True, text=True, timeout=120)
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    assert second.returncode == 0, second.stderr
    assert f'{root}: another Pattern_Generate run is writing here (it holds {root}/.lock)' in second.stdout
    assert metadata.returncode == 1 and metadata.stderr == (
        f'{root}: a Pattern_Generate run is writing here (it holds {root}/.lock); run --metadata again when it has finished\n')
    assert os.path.exists(half_written)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert '30 generated' in out and len(assert_consistent(root)['File_List']) == 36
    result = subprocess.run(script + ['--metadata'], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and 'removed 1 half-written patterns' in result.stdout   # A is gone: now it is stale
    assert not os.path.exists(half_written)


def test_a_disk_that_fills_is_one_line_and_a_rerun_completes(tmp_path, hp_file, capsys):
    """Patterns, then --pack, on a small file system: one line naming the folder and its space;
    what is finished stays whole; after space is freed the same command finishes the work."""
    root = str(tmp_path / 'people')
    for utterance in range(16):
        corpora.write(f'{root}/spk{utterance % 2}/u{utterance}.wav', corpora.voice(utterance % 2, utterance), 16000)
    train_root = str(tmp_path / 'patterns' / 'train')
    with small_file_system(train_root, 160) as made:
        if made is None:
            pytest.skip('a small file system cannot be mounted here')
        arguments = ['-hp', hp_file, '-mw', '2', '-folder', root]
        assert pattern_generate.main(arguments) == 1
        err = capsys.readouterr().err
        lines = [line for line in err.strip().splitlines() if not line.startswith('Patterns:')]   # the progress bar
        assert len(lines) == 1 and 'Traceback' not in err, err
        assert lines[0].startswith(f'Pattern_Generate.py: {train_root}/people: cannot write there (No space left on device; ')
        assert 'kB free there, about ' in lines[0] and lines[0].endswith('run the same command again to go on')
        finished = patterns.list_patterns(train_root)
        assert 0 < len(finished) < 16
        assert not [name for name in os.listdir(f'{train_root}/people') if not name.endswith('.PICKLE')]
        for file in finished:                           # whole patterns only
            assert patterns.load_pickle(f'{train_root}/{file}')['Mel'].shape[1] == 80
        subprocess.run(['mount', '-o', 'remount,size=4m', train_root], check=True)      # space freed
        assert pattern_generate.main(arguments) == 0
        out = capsys.readouterr().out
        assert f'{16 - len(finished)} generated, {len(finished)} skipped (already done)' in out
        assert len(metadata_of(train_root)['File_List']) == 16

        fill(train_root)                                # --pack on a disk with room for the metadata only
        filler = os.path.join(train_root, 'filler')
        os.truncate(filler, os.path.getsize(filler) - 32768)
        assert pattern_generate.main(['-hp', hp_file, '--pack']) == 1
        whole = capsys.readouterr().err
        err = whole.strip().split('\r')[-1].splitlines()[-1]            # the line after the progress bar
        assert err.startswith(f'--pack: {train_root}: cannot write the packed store there (No space left on device; ')
        assert err.endswith('free space and run --pack again to go on') and 'Traceback' not in whole
        os.remove(os.path.join(train_root, 'filler'))
        assert pattern_generate.main(['-hp', hp_file, '--pack']) == 0
        assert pattern_store_current(load_hyper_parameters(hp_file).Train.Train_Pattern)


def pattern_store_current(pattern_hp) -> bool:
    from ge2e_speaker import pattern_store
    return pattern_store.open_store(pattern_hp.Path, pattern_hp.Metadata_File)[0] is not None
