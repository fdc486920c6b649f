"""Speaker x utterance batches (Datasets.py) on small synthetic pattern corpora."""
import gc
import os
import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ge2e_speaker import atomic_files, datasets, patterns, slicing
from fixtures.patterns import write_pattern_corpus


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    """8 speakers of 6 patterns and 2 speakers of 3; 40-120 frames."""
    root = str(tmp_path_factory.mktemp('patterns'))
    write_pattern_corpus(root, 8, 6, frames=(40, 120), seed=3)
    folder = str(tmp_path_factory.mktemp('few'))
    write_pattern_corpus(folder, 2, 3, frames=(40, 120), seed=4)
    for name in os.listdir(f'{folder}/SYN'):       # rename the speakers so that they are new ones
        pattern = patterns.load_pickle(f'{folder}/SYN/{name}')
        speaker = 'FEW' + pattern['Speaker']
        file = patterns.pattern_name('SYN', speaker, name.split('.')[-2])
        atomic_files.write_atomically(f'{root}/SYN/{file}', patterns.pattern_bytes(pattern['Mel'], speaker, 'SYN'))
    metadata = patterns.build_metadata(root, SimpleNamespace(**patterns.load_pickle(f'{root}/METADATA.PICKLE')),
                                       log=lambda message: None)
    return root, metadata


def test_one_item_is_one_speaker_without_replacement(corpus):
    root, metadata = corpus
    dataset = datasets.SpeakerDataset(root, metadata, utterances=5)
    assert len(dataset) == 8 and dataset.left_out == 2
    for index in range(len(dataset)):
        item_index, mels, _, problems = dataset[index]
        assert problems == []
        assert item_index == index and len(mels) == 5
        dataset_name, speaker = dataset.speakers[index]
        own = [patterns.load_pickle(f'{root}/{file}')['Mel']
               for file in metadata['File_List_by_Speaker_Dict'][dataset_name, speaker]]
        matches = [next(i for i, other in enumerate(own) if other.shape == mel.shape and np.array_equal(other, mel))
                   for mel in mels]
        assert len(set(matches)) == 5                     # five different patterns of this speaker
        assert dataset.label(index) == f'SYN.{speaker}'


def test_file_names_are_compact(corpus):
    """No Python object per file: workers share the name arrays instead of copying them."""
    root, metadata = corpus
    dataset = datasets.SpeakerDataset(root, metadata, utterances=3)
    assert dataset.files.dtype.kind == 'S' and dataset.starts.dtype == np.int64
    assert len(dataset.files) == len(metadata['File_List'])
    assert not any(referrer is vars(dataset) for referrer in gc.get_referrers(metadata))


def test_seed_metadata_with_bare_file_names(corpus, tmp_path):
    """The seed's METADATA.PICKLE lists bare names; its patterns lie under <root>/<Dataset>/."""
    root, metadata = corpus
    bare = {'File_List_by_Speaker_Dict': {key: [file.split('/', 1)[1] for file in files]
                                          for key, files in metadata['File_List_by_Speaker_Dict'].items()}}
    dataset = datasets.SpeakerDataset(root, bare, utterances=6)
    assert all(mel.shape[1] == 80 for mel in dataset[0][1])


def test_pattern_cache(corpus, tmp_path):
    root, metadata = corpus
    copy = tmp_path / 'copy'
    (copy / 'SYN').mkdir(parents=True)
    speaker_files = metadata['File_List_by_Speaker_Dict'][('SYN', 'S0000')]
    for file in speaker_files:
        (copy / file).write_bytes(open(f'{root}/{file}', 'rb').read())
    small = {'File_List_by_Speaker_Dict': {('SYN', 'S0000'): speaker_files}}
    cached = datasets.SpeakerDataset(str(copy), small, utterances=6, use_cache=True)
    uncached = datasets.SpeakerDataset(str(copy), small, utterances=6, use_cache=False)
    cached[0], uncached[0]
    assert len(cached.cache) == 6 and not uncached.cache
    for file in speaker_files:
        os.remove(copy / file)
    assert len(cached[0][1]) == 6                         # served from memory
    _, mels, _, problems = uncached[0]                   # read from disk: gone, each named
    assert mels == [] and len(problems) == 6 and all(reason.endswith('missing: no such file') for _, reason in problems)


def test_too_few_speakers_says_how_many_and_what_to_change(corpus):
    root, metadata = corpus
    dataset = datasets.SpeakerDataset(root, metadata, utterances=4)
    datasets.check_enough_speakers(dataset, 8)
    with pytest.raises(datasets.DatasetConfigurationError) as error:
        datasets.check_enough_speakers(dataset, 9)
    message = str(error.value)
    assert '8 speakers have at least 4 patterns' in message
    assert 'Train.Batch.Train.Speaker' in message and 'Set Train.Batch.Train.Speaker to 8 or less' in message
    assert '2 with fewer are left out' in message
    with pytest.raises(datasets.DatasetConfigurationError, match=r'x 2 processes.*to 4 or less'):
        datasets.check_enough_speakers(dataset, 5, processes=2)


def test_collate_draws_one_length_and_crops_or_pads(corpus):
    root, metadata = corpus
    dataset = datasets.SpeakerDataset(root, metadata, utterances=4)
    collate = datasets.TrainCollater(60, 100)
    torch.manual_seed(0)
    lengths = set()
    for start in range(0, 8, 2):
        batch = [dataset[index] for index in (start, start + 1)]
        mels = collate(batch).mels
        lengths.add(mels.shape[2])
        assert mels.shape[:2] == (8, 80) and mels.dtype == torch.float32 and 60 <= mels.shape[2] <= 100
        originals = [mel for _, speaker_mels, _, _ in batch for mel in speaker_mels]
        for original, made in zip(originals, mels.permute(0, 2, 1).numpy()):
            length = made.shape[0]
            if original.shape[0] <= length:
                np.testing.assert_array_equal(made, slicing.reflect_pad(original, length))
            else:
                assert any(np.array_equal(made, original[offset:offset + length])
                           for offset in range(original.shape[0] - length + 1))
    assert len(lengths) > 1


class _Draws(torch.utils.data.Dataset):
    random = datasets.WorkerRandom(stream=0)

    def __len__(self):
        return 8

    def __getitem__(self, index):
        return int(self.random.generator().integers(1 << 40))


def test_workers_draw_different_streams():
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(_Draws(), batch_size=1, num_workers=2)
    first, second = [int(x) for x in loader], [int(x) for x in loader]
    assert len(set(first)) == 8                           # the two workers do not repeat each other
    assert set(first).isdisjoint(second)                  # and new epochs draw anew
    torch.manual_seed(0)
    assert [int(x) for x in loader] == first              # a seeded run repeats


def test_training_loader_batches_differ_across_workers(corpus):
    root, metadata = corpus
    dataset = datasets.SpeakerDataset(root, metadata, utterances=3)
    torch.manual_seed(1)
    loader = datasets.make_loader(dataset, datasets.TrainCollater(40, 200), 2, num_workers=2, training=True)
    lengths = [batch.mels.shape[2] for _ in range(3) for batch in loader]
    assert len(lengths) == 15                             # 10 speakers with 3 patterns: 5 batches an epoch
    # With one numpy state copied into both workers, batches 2k and 2k + 1 would have one length.
    assert any(lengths[index] != lengths[index + 1] for index in range(0, 14, 2))


def test_evaluation_batches_are_the_same_every_time(corpus):
    root, metadata = corpus
    dataset = datasets.SpeakerDataset(root, metadata, utterances=4, fixed_seed=0)
    collate = datasets.EvalCollater(60, 100, samples=5, frame_length=16, overlap=8)
    first = collate([dataset[index] for index in range(3)])
    second = collate([dataset[index] for index in range(3)])
    assert first['indices'] == [0, 1, 2]
    assert first['single'].shape[:2] == (12, 80) and 60 <= first['single'].shape[2] <= 100
    assert first['multi'].shape == (12 * 5, 80, 16)
    torch.testing.assert_close(first['single'], second['single'])
    torch.testing.assert_close(first['multi'], second['multi'])
    mel = dataset[1][1][0]
    np.testing.assert_array_equal(first['multi'][20:25].permute(0, 2, 1).numpy(), slicing.multi_slices(mel, 5, 16, 8))


def test_missing_metadata_says_how_to_make_it(tmp_path):
    hp = SimpleNamespace(Path=str(tmp_path), Metadata_File='METADATA.PICKLE')
    with pytest.raises(patterns.MetadataError, match='Pattern_Generate.py'):
        datasets.load_speaker_dataset(hp, None, 3, False)


def test_pattern_pickles_are_read_as_data_only(corpus, tmp_path):
    root, metadata = corpus
    (tmp_path / 'SYN').mkdir()
    (tmp_path / 'SYN' / 'evil.PICKLE').write_bytes(pickle.dumps(SimpleNamespace(Mel=None)))
    dataset = datasets.SpeakerDataset(str(tmp_path), {'File_List_by_Speaker_Dict': {('SYN', 'X'): ['SYN/evil.PICKLE']}}, 1)
    _, mels, files, problems = dataset[0]              # reported by name and skipped: nothing is run
    assert mels == [] and files == [] and len(problems) == 1
    assert problems[0][0] == 'SYN/evil.PICKLE' and 'evil.PICKLE: refused types.SimpleNamespace' in problems[0][1]
