"""The packed pattern store (pattern_store.py): build, read-back, resumption, shards, staleness,
Pattern_Generate.py --pack, and training reading it."""
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ge2e_speaker import atomic_files, datasets, pattern_generate, pattern_store, patterns, train
from ge2e_speaker.hyper_parameters import load_hyper_parameters
from fixtures.patterns import write_pattern_corpus
from fixtures.settings import save_hyper_parameters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUIET = dict(log=lambda message: None)


@pytest.fixture(scope='module')
def pristine(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('pristine'))
    write_pattern_corpus(root, 6, 5, frames=(40, 120), seed=5)
    return root


@pytest.fixture
def root(pristine, tmp_path):
    """A fresh copy of 6 speakers x 5 patterns of 40-120 frames."""
    copy = str(tmp_path / 'patterns')
    shutil.copytree(pristine, copy)
    return copy


def pickled_mels(root: str) -> dict:
    metadata = patterns.load_metadata(root, 'METADATA.PICKLE')
    return {file: patterns.load_pickle(os.path.join(root, file))['Mel'] for file in metadata['File_List']}


def assert_store_equals_pickles(root: str) -> pattern_store.PackedStore:
    store, reason = pattern_store.open_store(root)
    assert reason is None and store is not None
    mels = pickled_mels(root)
    assert len(store) == len(mels)
    for file, mel in mels.items():
        packed = store.mel(store.locate([file])[0])
        assert packed.dtype == np.float32 and np.array_equal(packed, mel)
    return store


def rebuild_metadata(root: str) -> None:
    sound = SimpleNamespace(**patterns.load_pickle(os.path.join(root, 'METADATA.PICKLE')))
    patterns.build_metadata(root, sound, **QUIET)


def test_build_reads_back_the_pickles_exactly(root):
    counts = pattern_store.pack(root, **QUIET)
    assert counts == {'patterns': 30, 'packed': 30, 'reused': 0}
    folder = pattern_store.store_folder(root)
    assert sorted(os.listdir(folder)) == ['STORE.json', 'g0-all0.mels', 'g0-all0.rows', 'index-0.npz']
    total = sum(mel.shape[0] for mel in pickled_mels(root).values())
    assert os.path.getsize(os.path.join(folder, 'g0-all0.mels')) == total * 80 * 4
    store = assert_store_equals_pickles(root)
    mel = store.mel(0)
    assert not mel.flags.owndata and not mel.flags.writeable          # a view of the map, not a copy
    messages = []
    assert pattern_store.pack(root, log=messages.append)['packed'] == 0
    assert messages == [f'{folder}: up to date (30 patterns)']


def test_a_killed_build_resumes_where_it_stopped(root, monkeypatch):
    load = patterns.load_pickle
    calls = []

    def killed_after_12(path):
        calls.append(path)
        if len(calls) > 12 and path.endswith(patterns.PATTERN_SUFFIX):
            raise KeyboardInterrupt
        return load(path)

    monkeypatch.setattr(patterns, 'load_pickle', killed_after_12)
    with pytest.raises(KeyboardInterrupt):
        pattern_store.pack(root, **QUIET)
    folder = pattern_store.store_folder(root)
    assert pattern_store.open_store(root) == (None, None)              # nothing committed: no manifest
    rows = pattern_store.read_rows(os.path.join(folder, 'g0-all0.rows.tmp'))
    assert len(rows) == 11                                             # 12 loads: the metadata and 11 patterns
    with open(os.path.join(folder, 'g0-all0.mels'), 'ab') as stream:
        stream.write(b'\x01' * 1000)                                   # a pattern half-written when killed
    with open(os.path.join(folder, 'g0-all0.rows.tmp'), 'a') as stream:
        stream.write('SYN/cut-off')                                    # and its row cut short
    monkeypatch.setattr(patterns, 'load_pickle', load)
    messages = []
    counts = pattern_store.pack(root, log=messages.append)
    assert counts['packed'] == 30 and counts['reused'] == 0
    assert messages[0] == f'{folder}: resuming g0-all0 after 11 patterns'
    assert_store_equals_pickles(root)


def test_shards_then_one_merge(root):
    for shard in range(3):
        assert pattern_store.pack(root, shard=(shard, 3), **QUIET)['packed'] == 10
        assert pattern_store.open_store(root) == (None, None)          # shards commit nothing
    messages = []
    pattern_store.pack(root, shard=(1, 3), log=messages.append)
    assert 'already packed' in messages[0]
    assert pattern_store.pack(root, **QUIET) == {'patterns': 30, 'packed': 0, 'reused': 30}
    store = assert_store_equals_pickles(root)
    assert len(store.part_paths) == 3


def test_stale_store_is_refused_then_updated(root):
    pattern_store.pack(root, **QUIET)
    metadata = patterns.load_metadata(root, 'METADATA.PICKLE')
    # A pattern rewritten in place of another (same name, other frames' values).
    file = metadata['File_List'][4]
    old = patterns.load_pickle(os.path.join(root, file))
    atomic_files.write_atomically(os.path.join(root, file), patterns.pattern_bytes(old['Mel'] + 1, old['Speaker'], 'SYN'))
    store, reason = pattern_store.open_store(root)
    assert store is None and reason.endswith('were added, removed or rewritten since packing; '
                                             'update it with: python Pattern_Generate.py --pack')
    assert os.path.join(root, 'SYN') in reason
    assert pattern_store.pack(root, **QUIET)['packed'] == 1
    assert_store_equals_pickles(root)
    # A pattern added, then the metadata rebuilt.
    atomic_files.write_atomically(os.path.join(root, 'SYN', 'SYN.S0000.extra.PICKLE'),
                              patterns.pattern_bytes(np.zeros((70, 80), np.float32), 'S0000', 'SYN'))
    rebuild_metadata(root)
    assert 'METADATA.PICKLE changed since packing' in pattern_store.open_store(root)[1]
    assert pattern_store.pack(root, **QUIET) == {'patterns': 31, 'packed': 1, 'reused': 30}
    assert_store_equals_pickles(root)
    # Patterns removed: the store follows, and compacts a part that is mostly dead.
    for file in metadata['File_List'][:20]:
        os.remove(os.path.join(root, file))
    rebuild_metadata(root)
    assert pattern_store.open_store(root)[0] is None
    counts = pattern_store.pack(root, **QUIET)
    assert counts['patterns'] == 11 and counts['packed'] == 10          # the big part was 1/3 alive: repacked
    assert_store_equals_pickles(root)
    assert len(os.listdir(pattern_store.store_folder(root))) == 6       # 2 parts, their rows, index, manifest


def test_a_pattern_whose_metadata_is_out_of_date_stops_the_build(root):
    file = patterns.load_metadata(root, 'METADATA.PICKLE')['File_List'][0]
    atomic_files.write_atomically(os.path.join(root, file), patterns.pattern_bytes(np.zeros((33, 80), np.float32), 'S0000', 'SYN'))
    with pytest.raises(pattern_store.StoreError, match=r'mel of shape \(33, 80\).*the metadata is out of date'):
        pattern_store.pack(root, **QUIET)
    os.remove(os.path.join(root, file))
    with pytest.raises(pattern_store.StoreError, match='listed in .*METADATA.PICKLE but missing'):
        pattern_store.pack(root, **QUIET)


@pytest.fixture
def hp_file(root, tmp_path):
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    hp.Train.Train_Pattern.Path, hp.Train.Eval_Pattern.Path = root, str(tmp_path / 'no-eval')
    path = str(tmp_path / 'hp.yaml')
    save_hyper_parameters(hp, path)
    return path


def test_pattern_generate_pack(root, hp_file, capsys):
    assert pattern_generate.main(['-hp', hp_file, '--pack', '--shard', '0/2']) == 0
    assert pattern_generate.main(['-hp', hp_file, '--pack', '--shard', '1/2']) == 0
    assert pattern_generate.main(['-hp', hp_file, '--pack']) == 0
    output = capsys.readouterr().out
    assert 'no-eval: no METADATA.PICKLE, nothing to pack' in output
    assert '30 patterns' in output and '0 packed now, 30 reused' in output
    assert_store_equals_pickles(root)
    with pytest.raises(SystemExit):
        pattern_generate.main(['-hp', hp_file, '-vctk', root, '--pack', '--shard', '0/2'])
    assert '--pack --shard K/N packs a share of finished patterns' in capsys.readouterr().err
    file = patterns.load_metadata(root, 'METADATA.PICKLE')['File_List'][0]
    with open(os.path.join(root, file), 'wb') as stream:
        stream.write(b'not a pickle')
    os.remove(os.path.join(root, patterns.RECORDS_FOLDER, os.listdir(os.path.join(root, patterns.RECORDS_FOLDER))[0]))
    assert pattern_generate.main(['-hp', hp_file, '--pack']) == 0     # the metadata is rebuilt without it
    assert 'left out of the metadata' in capsys.readouterr().out
    assert len(pattern_store.open_store(root)[0]) == 29


def batches(dataset, workers: int) -> list:
    """Three epochs of 2 batches of 3 speakers."""
    torch.manual_seed(7)
    loader = datasets.make_loader(dataset, datasets.TrainCollater(50, 90), 3, num_workers=workers, training=True)
    return [batch.mels for _ in range(3) for batch in loader]


@pytest.mark.parametrize('workers', [0, 2])
def test_store_and_pickles_make_the_same_batches(root, workers):
    pattern_store.pack(root, **QUIET)
    metadata = patterns.load_metadata(root, 'METADATA.PICKLE')
    store, _ = pattern_store.open_store(root)
    from_store = batches(datasets.SpeakerDataset(root, metadata, 4, store=store), workers)
    from_pickles = batches(datasets.SpeakerDataset(root, metadata, 4), workers)
    assert len(from_store) == 6 and len({batch.shape[2] for batch in from_store}) > 1
    for packed, pickled in zip(from_store, from_pickles):
        assert torch.equal(packed, pickled)


def test_training_reads_the_store_only_when_current_and_wanted(root, tmp_path):
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    hp.Encoder.LSTM.Sizes, hp.Encoder.Embedding_Size = 16, 16
    hp.Train.Train_Pattern.Path, hp.Train.Eval_Pattern.Path = root, str(tmp_path / 'no-eval')
    hp.Train.Batch.Train.Speaker, hp.Train.Batch.Train.Pattern_per_Speaker = 3, 4
    hp.Train.Num_Workers, hp.Device = 0, '-1'
    hp.Checkpoint_Path, hp.Log_Path = str(tmp_path / 'Checkpoint'), str(tmp_path / 'Log')

    def trainer_source(**settings):
        for key, value in settings.items():
            setattr(hp.Train, key, value)
        messages = []
        trainer = train.Trainer(hp, log=messages.append)
        trainer.writer.close()
        return trainer.train_dataset.store is not None, messages

    assert trainer_source(Use_Packed_Store=True)[0] is False            # no store yet: pickles, no complaint
    pattern_store.pack(root, **QUIET)
    uses_store, messages = trainer_source()
    assert uses_store and any(message.endswith('reading its packed store') for message in messages)
    assert trainer_source(Use_Packed_Store=False)[0] is False
    file = patterns.load_metadata(root, 'METADATA.PICKLE')['File_List'][0]
    os.remove(os.path.join(root, file))
    rebuild_metadata(root)
    uses_store, messages = trainer_source(Use_Packed_Store=True)
    assert not uses_store
    assert any('changed since packing; update it with: python Pattern_Generate.py --pack. '
               'Reading the pattern pickles meanwhile.' in message for message in messages)
    assert any(message.endswith('reading the pattern pickles') for message in messages)
