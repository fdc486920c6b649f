"""The pattern store: the seed's pickle format, the data-only unpickler, metadata builds."""
import os
import pickle

import numpy as np
import pytest

from ge2e_speaker import atomic_files, patterns
from ge2e_speaker.hyper_parameters import load_hyper_parameters

SOUND = load_hyper_parameters('Hyper_Parameter.yaml').Sound


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}',))


def test_a_crafted_pickle_runs_nothing(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'VCTK.P225.evil.PICKLE'
    path.write_bytes(pickle.dumps({'Mel': _RunsCode(marker), 'Speaker': 'P225', 'Dataset': 'VCTK'}))
    with pytest.raises(patterns.UnsafePickleError) as error:
        patterns.load_pickle(str(path))
    assert str(path) in str(error.value) and 'system' in str(error.value)
    assert not marker.exists()


def test_seed_written_pattern_and_metadata_load(tmp_path):
    """What the seed wrote with plain pickle (numpy arrays, tuple keys) loads through the safe reader."""
    mel = np.random.default_rng(0).uniform(-4, 4, (150, 80)).astype(np.float32)
    seed_pattern = tmp_path / 'p.PICKLE'
    seed_pattern.write_bytes(pickle.dumps({'Mel': mel, 'Speaker': 'P225', 'Dataset': 'VCTK'}, protocol=4))
    loaded = patterns.load_pickle(str(seed_pattern))
    np.testing.assert_array_equal(loaded['Mel'], mel)
    metadata = {'Sample_Rate': 16000, 'File_List_by_Speaker_Dict': {('VCTK', 'P225'): ['VCTK/p.PICKLE']},
                'Mel_Length_Dict': {'VCTK/p.PICKLE': np.int64(150)}}
    seed_metadata = tmp_path / 'METADATA.PICKLE'
    seed_metadata.write_bytes(pickle.dumps(metadata, protocol=4))
    assert patterns.load_pickle(str(seed_metadata)) == metadata


def test_our_pattern_is_the_seed_format():
    mel = np.ones((70, 80), np.float32)
    data = patterns.pattern_bytes(mel, 'p225', 'VCTK')
    assert data[:2] == b'\x80\x04'   # pickle protocol 4
    pattern = pickle.loads(data)     # a plain unpickler (the seed's) reads it
    assert set(pattern) == {'Mel', 'Speaker', 'Dataset'} and pattern['Speaker'] == 'P225'
    assert pattern['Mel'].dtype == np.float32 and pattern['Mel'].shape == (70, 80)


def _write_pattern(root, dataset, speaker, stem, frames, record=None):
    file = f'{dataset}/{patterns.pattern_name(dataset, speaker, stem)}'
    os.makedirs(os.path.join(root, dataset), exist_ok=True)
    written = atomic_files.write_atomically(os.path.join(root, file),
                                            patterns.pattern_bytes(np.zeros((frames, 80), np.float32), speaker, dataset))
    if record is not None:
        record.add(file, dataset, speaker.upper(), frames, written)
    return file


def test_metadata_from_records_and_scan_agree(tmp_path):
    recorded_root, scanned_root = str(tmp_path / 'a'), str(tmp_path / 'b')
    writer = patterns.RecordWriter(recorded_root)
    for root, record in ((recorded_root, writer), (scanned_root, None)):
        for speaker, count in (('p225', 3), ('p226', 2)):
            for index in range(count):
                _write_pattern(root, 'VCTK', speaker, f'{speaker}_{index:03d}', 70 + index, record)
        _write_pattern(root, 'CMUA', 'bdl', 'arctic_a0001', 99, record)
    writer.close()
    recorded = patterns.build_metadata(recorded_root, SOUND, log=lambda line: None)
    scanned = patterns.build_metadata(scanned_root, SOUND, log=lambda line: None)
    assert recorded == scanned
    assert recorded['File_List'] == sorted(recorded['File_List']) and len(recorded['File_List']) == 6
    assert recorded['File_List_by_Speaker_Dict'][('VCTK', 'P225')] == [
        'VCTK/VCTK.P225.p225_000.PICKLE', 'VCTK/VCTK.P225.p225_001.PICKLE', 'VCTK/VCTK.P225.p225_002.PICKLE']
    assert recorded['Mel_Length_Dict']['CMUA/CMUA.BDL.arctic_a0001.PICKLE'] == 99
    assert recorded['Dataset_Dict']['CMUA/CMUA.BDL.arctic_a0001.PICKLE'] == 'CMUA'
    assert recorded['Sample_Rate'] == 16000 and recorded['Mel_Dim'] == 80
    # A rebuild never counts the metadata file itself as a pattern (the seed's bug).
    assert patterns.build_metadata(recorded_root, SOUND, log=lambda line: None) == recorded


def test_metadata_skips_a_damaged_pattern_and_drops_deleted_ones(tmp_path):
    root = str(tmp_path)
    writer = patterns.RecordWriter(root)
    kept = _write_pattern(root, 'VCTK', 'p225', 'a', 80, writer)
    deleted = _write_pattern(root, 'VCTK', 'p225', 'b', 80, writer)
    writer.close()
    os.remove(os.path.join(root, deleted))
    damaged = os.path.join(root, 'VCTK', 'VCTK.P225.c.PICKLE')
    with open(damaged, 'wb') as stream:
        stream.write(patterns.pattern_bytes(np.zeros((80, 80), np.float32), 'p225', 'VCTK')[:100])
    lines = []
    metadata = patterns.build_metadata(root, SOUND, log=lines.append)
    assert metadata['File_List'] == [kept]
    assert any(damaged in line and 'not a readable pickle' in line for line in lines)
    assert '1 unreadable or malformed' in lines[-1]


def test_load_metadata_explains_what_to_do(tmp_path):
    with pytest.raises(patterns.MetadataError, match='Pattern_Generate.py'):
        patterns.load_metadata(str(tmp_path), 'METADATA.PICKLE')
    patterns.build_metadata(str(tmp_path), SOUND, log=lambda line: None)
    other = load_hyper_parameters('Hyper_Parameter.yaml').Sound
    other.Sample_Rate = 22050
    with pytest.raises(patterns.MetadataError, match='Sample_Rate = 16000'):
        patterns.load_metadata(str(tmp_path), 'METADATA.PICKLE', other)
