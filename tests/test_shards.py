"""Inference across machines: --shard K/N parts, then --merge, equal one run; what cannot be merged is refused."""
import json
import os
import pickle

import numpy as np
import pytest

from ge2e_speaker import inference, shards
from fixtures.corpora import voice, write


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    """4 speakers x 3 utterances of 0.8-2.4 s, and a silent file in the middle of the order."""
    root = tmp_path_factory.mktemp('speakers')
    for speaker in range(4):
        for take in range(3):
            write(str(root / f'spk{speaker}' / f'{take}.wav'), voice(speaker, take, seconds=0.8 + 0.8 * take), 16000)
    write(str(root / 'spk1' / 'silent.wav'), np.zeros(16000, np.float32), 16000)
    return str(root)


def read_set(folder):
    with open(os.path.join(folder, 'speaker_embeddings.pickle'), 'rb') as stream:
        speakers = pickle.load(stream)
    return (np.load(os.path.join(folder, 'embeddings.npy')), open(os.path.join(folder, 'embeddings_index.tsv')).read(),
            open(os.path.join(folder, 'skipped.tsv')).read(), speakers)


def make_shards(cli, checkpoint, corpus, out, parts, order, *extra):
    for part in order:
        code, printed, err = cli('-c', checkpoint, '-i', corpus, '-o', out, '--shard', f'{part}/{parts}', *extra)
        assert code == 0, err
        assert f'Shard {part}/{parts}: files ' in printed and f'python Inference.py -o {out} --merge' in printed


def test_shards_then_merge_equal_one_run(inference_cli, random_checkpoint, corpus, tmp_path):
    code, _, err = inference_cli('-c', random_checkpoint, '-i', corpus, '-o', tmp_path / 'one', '--no-plot')
    assert code == 0, err
    make_shards(inference_cli, random_checkpoint, corpus, tmp_path / 'split', 3, (3, 1, 2))    # any order, as machines finish
    manifest = json.loads((tmp_path / 'split' / 'shards' / '2-of-3' / 'shard.json').read_text())
    assert manifest['files'] == [4, 8] and manifest['total_files'] == 13 and manifest['parts'] == 3
    code, printed, err = inference_cli('-o', tmp_path / 'split', '--merge')
    assert code == 0, err
    assert 'Merged 3 shards of 13 files: 12 rows, 1 skipped' in printed
    single, merged = read_set(tmp_path / 'one'), read_set(tmp_path / 'split')
    assert merged[0].shape == single[0].shape == (12, 256)
    np.testing.assert_allclose(merged[0], single[0], atol=1e-5)
    assert merged[1] == single[1] and merged[2] == single[2] and 'silent.wav\tsilent' in merged[2]
    assert sorted(merged[3]) == sorted(single[3]) == ['spk0', 'spk1', 'spk2', 'spk3']
    for label, vector in single[3].items():
        np.testing.assert_allclose(merged[3][label], vector, atol=1e-5)
    assert (tmp_path / 'split' / 'tsne.png').stat().st_size > 10_000        # the merged run draws its figure


def test_a_missing_incomplete_or_foreign_shard_is_refused(inference_cli, random_checkpoint, corpus, tmp_path):
    out = tmp_path / 'out'
    make_shards(inference_cli, random_checkpoint, corpus, out, 3, (1, 3))
    code, _, err = inference_cli('-o', out, '--merge')
    assert code == 2 and err.strip().endswith('shard 2/3 missing (2 of 3 there); run Inference.py with --shard 2/3 '
                                              '(same -c, -i and settings) and merge again')
    assert not (out / 'embeddings.npy').exists()
    # a part from another run (other slices: other rows) is named, not merged
    make_shards(inference_cli, random_checkpoint, corpus, out, 3, (2,), '--slices', 'multi')
    code, _, err = inference_cli('-o', out, '--merge')
    assert code == 2 and 'is from another run than' in err and '2-of-3' in err
    # the same part again, as the run asks: now it merges
    make_shards(inference_cli, random_checkpoint, corpus, out, 3, (2,))
    assert inference_cli('-o', out, '--merge')[0] == 0
    # a part whose run did not finish (no shard.json), or whose rows are not the manifest's
    (out / 'shards' / '3-of-3' / 'shard.json').unlink()
    code, _, err = inference_cli('-o', out, '--merge')
    assert code == 2 and '3-of-3: incomplete (no shard.json' in err
    make_shards(inference_cli, random_checkpoint, corpus, out, 3, (3,))
    np.save(out / 'shards' / '1-of-3' / 'embeddings.npy', np.zeros((2, 256), np.float32))
    code, _, err = inference_cli('-o', out, '--merge')
    assert code == 2 and '1-of-3: embeddings.npy (2 rows)' in err
    # parts of another part count
    make_shards(inference_cli, random_checkpoint, corpus, out, 2, (1,))
    assert 'from another run' in inference_cli('-o', out, '--merge')[2]


@pytest.mark.parametrize('argv, message', [
    (['--merge', '-i', 'x'], '--merge publishes the shards already in -o OUT: give only -o'),
    (['-c', 'S.pkl', '--shard', '1/2'], '--shard K/N embeds a part of the files of -i: give -i INPUT too'),
    (['-c', 'S.pkl', '-i', 'x', '--shard', '1/2', '--trials', 't.txt'], '--shard embeds -i only'),
    (['-i', 'x'], 'give a checkpoint with -c'),
])
def test_flag_combinations_that_cannot_run(inference_cli, tmp_path, argv, message):
    code, _, err = inference_cli(*argv)
    assert code == 2 and message in err and 'Traceback' not in err


@pytest.mark.parametrize('text', ['0/2', '3/2', '2', 'a/b', '1/0'])
def test_a_shard_that_is_not_k_of_n_is_refused_by_argparse(capsys, text):
    with pytest.raises(SystemExit):
        inference.parse_arguments(['-c', 'S.pkl', '-i', 'x', '--shard', text])
    assert 'is not K/N with 1 <= K <= N' in capsys.readouterr().err


def test_parts_are_contiguous_and_cover_the_input():
    for count in (0, 1, 7, 13, 1000):
        for parts in (1, 2, 3, 8):
            ranges = [shards.part_range(count, part, parts) for part in range(1, parts + 1)]
            assert ranges[0][0] == 0 and ranges[-1][1] == count
            assert all(stop == start for (_, stop), (start, _) in zip(ranges, ranges[1:]))
            assert max(b - a for a, b in ranges) - min(b - a for a, b in ranges) <= 1
