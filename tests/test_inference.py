"""Inference.py: outputs of the command line, the seed's checkpoints and embeddings, verification,
the Python API, exports and bad input. A randomly initialised encoder stands in for a trained one."""
import os
import pickle

import numpy as np
import pytest
import threadpoolctl
import torch
import yaml

from ge2e_speaker import audio, embedding, embedding_set, inference, inputs, npy_writer, verification
from ge2e_speaker.hyper_parameters import load_hyper_parameters, to_dict
from ge2e_speaker.modules import Encoder
from fixtures.corpora import voice, voxceleb, write
from fixtures.seed_recipe import seed_mel

HP = load_hyper_parameters('Hyper_Parameter.yaml')
PORT_KEYS = {'Sound': ('Trim_Top_dB', 'Inference_Top_dB', 'Min_Frames', 'Inference_Min_Frames'), 'Train': ('Loss', 'Mixed_Precision')}


class SeedEncoder(torch.nn.Module):
    """The seed's encoder as the seed wrote it (batch-first LSTMs), to check ours against."""

    def __init__(self, mel_dims=80, lstm_size=256, lstm_stacks=3, embedding_size=256):
        super().__init__()
        self.lstm_stacks = lstm_stacks
        self.layer_Dict = torch.nn.ModuleDict()
        self.layer_Dict['Prenet'] = torch.nn.Linear(mel_dims, lstm_size)
        for index in range(lstm_stacks):
            self.layer_Dict[f'LSTM_{index}'] = torch.nn.LSTM(lstm_size, lstm_size, bias=True, batch_first=True)
        self.layer_Dict['Linear'] = torch.nn.Linear(lstm_size, embedding_size)

    def forward(self, mels):
        x = self.layer_Dict['Prenet'](mels.transpose(2, 1))
        for index in range(self.lstm_stacks):
            x = self.layer_Dict[f'LSTM_{index}'](x)[0] + (x if index < self.lstm_stacks - 1 else 0)
        return self.layer_Dict['Linear'](x[:, -1, :])


def seed_embedding(model: SeedEncoder, path: str) -> np.ndarray:
    """The seed's Inference: mel with top_db 20, Correction to 192 frames, 5 x 64 windows, mean, L2.
    Its random crop of a longer mel is replaced by the centred one (what the port does)."""
    mel = seed_mel(path, top_db=20)
    if mel.shape[0] > 192:
        offset = (mel.shape[0] - 192) // 2
        mel = mel[offset:offset + 192]
    else:
        pad = (192 - mel.shape[0]) / 2
        mel = np.pad(mel, [[int(np.floor(pad)), int(np.ceil(pad))], [0, 0]], mode='reflect')
    windows = np.stack([mel[index:index + 64] for index in range(0, 192 - 32, 64 - 32)])
    with torch.no_grad():
        raw = model(torch.FloatTensor(windows).transpose(2, 1))
        return torch.nn.functional.normalize(raw.view(-1, 5, raw.size(1)).mean(dim=1), p=2, dim=1)[0].numpy()


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    """VoxCeleb1 layout, 3 speakers x 2 videos x 2 utterances, plus a silent and a damaged file."""
    root = str(tmp_path_factory.mktemp('vox'))
    voxceleb(root, ids=(10001, 10002, 10003), utterances=2)
    wav = os.path.join(root, 'wav')
    write(f'{wav}/id10003/silent/00001.wav', np.zeros(8000, np.float32), 16000)
    with open(f'{wav}/id10003/silent/00002.wav', 'wb') as stream:
        stream.write(b'RIFF, but not a wave file')
    return wav


@pytest.fixture(scope='module')
def checkpoint(random_checkpoint):
    return random_checkpoint


def run_cli(capsys, *argv):
    code = inference.main([str(argument) for argument in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------------------------------------

def test_outputs_of_a_folder(corpus, checkpoint, tmp_path, capsys):
    code, out, err = run_cli(capsys, '-c', checkpoint, '-i', corpus, '-o', tmp_path)
    assert code == 0, err
    embeddings = np.load(tmp_path / 'embeddings.npy')
    index = (tmp_path / 'embeddings_index.tsv').read_text().splitlines()
    assert index[0] == 'path\tlabel'
    rows = [line.split('\t') for line in index[1:]]
    assert embeddings.dtype == np.float32 and embeddings.shape == (12, 256) == (len(rows), 256)
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
    # input order (sorted walk), label = the id folder two levels above the file, bad files left out
    assert [path for path, _ in rows] == sorted(path for path, _ in rows)
    assert all(os.path.basename(os.path.dirname(os.path.dirname(path))) == label for path, label in rows)
    assert {label for _, label in rows} == {'id10001', 'id10002', 'id10003'}
    assert not any('silent' in path for path, _ in rows)
    assert '2 skipped' in out
    skipped = (tmp_path / 'skipped.tsv').read_text()
    assert 'silent/00001.wav\tsilent' in skipped and 'silent/00002.wav\tunreadable' in skipped
    assert 'skipped ' + os.path.join(corpus, 'id10003', 'silent', '00001.wav') in out   # by name, as it happens
    # speaker vectors: plain dict of str -> float32 [256], the re-normalised mean of the rows
    with open(tmp_path / 'speaker_embeddings.pickle', 'rb') as stream:
        speakers = pickle.load(stream)
    assert type(speakers) is dict and sorted(speakers) == ['id10001', 'id10002', 'id10003']
    for label, vector in speakers.items():
        assert type(label) is str and type(vector) is np.ndarray and vector.dtype == np.float32 and vector.shape == (256,)
        mean = embeddings[[row_label == label for _, row_label in rows]].mean(axis=0)
        np.testing.assert_allclose(vector, mean / np.linalg.norm(mean), atol=1e-6)
    assert (tmp_path / 'tsne.png').stat().st_size > 10_000
    assert not list(tmp_path.glob('*.partial'))


def test_utterances_too_short_to_embed_are_refused_by_name(checkpoint, tmp_path, capsys):
    """Below Sound.Inference_Min_Frames frames of sound (0.26 s) a file gets no row: one line
    naming it and the setting, a count in the summary; a 0.5 s word is still embedded."""
    rate = HP.Sound.Sample_Rate
    word = write(str(tmp_path / 'in' / 'a' / 'word.wav'), voice(0, 0, seconds=0.5), rate)
    click = write(str(tmp_path / 'in' / 'a' / 'click.wav'), voice(0, 1, seconds=0.05), rate)
    code, out, err = run_cli(capsys, '-c', checkpoint, '-i', tmp_path / 'in', '-o', tmp_path / 'out', '--no-plot')
    assert code == 0, err
    rows = (tmp_path / 'out' / 'embeddings_index.tsv').read_text().splitlines()[1:]
    assert [row.split('\t')[0] for row in rows] == [word]
    reason = (tmp_path / 'out' / 'skipped.tsv').read_text().splitlines()[1].split('\t')
    assert reason[0] == click and reason[1].startswith('too short: ')
    assert reason[1].endswith('frames after trimming, fewer than Sound.Inference_Min_Frames (16)')
    assert 'skipped: too short: 1' in out
    encoder = embedding.load_encoder(checkpoint, workers=0)
    samples = voice(0, 1, seconds=0.05)
    with pytest.raises(audio.AudioRejected, match='fewer than Sound.Inference_Min_Frames'):
        encoder.embed_waveform(samples, rate)


def test_list_file_labels_and_no_plot(corpus, checkpoint, tmp_path, capsys):
    files = sorted(str(path) for path in __import__('pathlib').Path(corpus).glob('id1000[12]/*/*.wav'))
    relative = os.path.relpath(files[1], tmp_path)
    listing = tmp_path / 'list.txt'
    listing.write_text(f'{files[0]} alice\n{relative} bob\n\n# a comment\n{files[2]}\n{files[3]}\tcarol\n')
    code, _, err = run_cli(capsys, '-c', checkpoint, '-i', listing, '-o', tmp_path / 'out', '--no-plot')
    assert code == 0, err
    rows = [line.split('\t') for line in (tmp_path / 'out' / 'embeddings_index.tsv').read_text().splitlines()[1:]]
    assert [label for _, label in rows] == ['alice', 'bob', '', 'carol']
    assert os.path.samefile(rows[1][0], files[1])       # relative to the list's folder
    with open(tmp_path / 'out' / 'speaker_embeddings.pickle', 'rb') as stream:
        assert sorted(pickle.load(stream)) == ['alice', 'bob', 'carol']    # unlabelled rows have no speaker
    assert not (tmp_path / 'out' / 'tsne.png').exists()


def test_folder_labels(tmp_path):
    for relative in ('p225/p225_001.wav', 'p226/p226_001.flac', 'p226/sub/x.WAV', 'loose.wav', 'notes.txt'):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b'')
    paths, labels = inputs.read_input(str(tmp_path))
    assert [os.path.relpath(path, tmp_path) for path in paths] == [
        'loose.wav', 'p225/p225_001.wav', 'p226/p226_001.flac', 'p226/sub/x.WAV']
    assert labels == [tmp_path.name, 'p225', 'p226', 'p226']


def test_tsne_sample_is_bounded(tmp_path, monkeypatch):
    """A big run plots at most 20 utterances of each of the first 30 labels."""
    encoder = embedding.SpeakerEncoder(Encoder.from_hyper_parameters(HP), HP, workers=0)
    paths = [f'{label}/{number}.wav' for label in range(40) for number in range(25)]
    labels = [path.split('/')[0] for path in paths]
    vectors = np.random.default_rng(0).standard_normal((len(paths), 256)).astype(np.float32)
    monkeypatch.setattr(encoder, 'stream_files', lambda paths, progress: ((i, vectors[i], None) for i in range(len(paths))))
    drawn = {}
    monkeypatch.setattr(embedding_set, 'plot_tsne', lambda v, l, path, title: drawn.update(vectors=v, labels=l) or True)
    rows, skipped, _, _ = inference.embed_inputs(encoder, paths, labels, str(tmp_path), True, 'title')
    assert rows == 1000 and not skipped
    assert len(drawn['vectors']) == 600 and len(set(drawn['labels'])) == 30
    assert max(drawn['labels'].count(label) for label in set(drawn['labels'])) == 20
    assert np.load(tmp_path / 'embeddings.npy').shape == (1000, 256)


def test_seed_checkpoint_gives_the_seeds_embeddings(tmp_path, capsys):
    """S_<step>.pkl in the seed's layout (with optimiser and scheduler state) loads with
    weights_only=True, and embeds as the seed's own code would."""
    torch.manual_seed(1)
    seed_model = SeedEncoder()
    optimizer = torch.optim.RAdam(seed_model.parameters(), lr=1e-3, eps=1e-7)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=10000, gamma=0.5)
    seed_model(torch.randn(2, 80, 20)).sum().backward()
    optimizer.step()
    scheduler.step()
    torch.save({'Model': seed_model.state_dict(), 'Optimizer': optimizer.state_dict(),
                'Scheduler': scheduler.state_dict(), 'Steps': 100000, 'Epochs': 148}, tmp_path / 'S_100000.pkl')
    # the seed's own hyper-parameter file: none of the port's keys
    with open('Hyper_Parameter.yaml', encoding='utf-8') as stream:
        seed_hp = yaml.safe_load(stream)
    for section, keys in PORT_KEYS.items():
        for key in keys:
            del seed_hp[section][key]
    with open(tmp_path / 'Hyper_Parameter.yaml', 'w', encoding='utf-8') as stream:
        yaml.safe_dump(seed_hp, stream)

    short = write(str(tmp_path / 'short.wav'), voice(1, 1, seconds=1.0), 16000)      # < 192 frames: padded
    long = write(str(tmp_path / 'long.wav'), voice(2, 2, seconds=4.0), 16000)        # > 192 frames: cropped
    assert seed_mel(short, 20).shape[0] < 192 < seed_mel(long, 20).shape[0]
    encoder = embedding.load_encoder(str(tmp_path / 'S_100000.pkl'), slices='multi')   # the seed's windows
    assert encoder.hp.Sound.Inference_Top_dB == 20                  # the seed's inference value, by default
    for path in (short, long):
        np.testing.assert_allclose(encoder.embed_file(path), seed_embedding(seed_model.eval(), path), atol=1e-4)
    code, out, err = run_cli(capsys, '-c', tmp_path / 'S_100000.pkl', '-i', short, '-o', tmp_path / 'out', '--no-plot')
    assert code == 0, err
    assert 'step 100000' in out and str(tmp_path / 'Hyper_Parameter.yaml') in out


def test_a_checkpoint_carries_its_settings(corpus, tmp_path, capsys):
    """A checkpoint with its hyper-parameters inside needs no YAML: here ./Hyper_Parameter.yaml
    (256 units) would not fit its 32-unit encoder."""
    hp = load_hyper_parameters('Hyper_Parameter.yaml')
    hp.Encoder.LSTM.Sizes = hp.Encoder.Embedding_Size = 32
    hp.Device = '-1'
    torch.save({'Model': Encoder.from_hyper_parameters(hp).state_dict(), 'Steps': 3, 'Hyper_Parameters': to_dict(hp)},
               tmp_path / 'S_3.pkl')
    encoder = embedding.load_encoder(str(tmp_path / 'S_3.pkl'), workers=0)
    assert encoder.embedding_size == 32 and encoder.device == torch.device('cpu')
    wav = os.path.join(corpus, 'id10001', '1zcIwhmdeo4', '00001.wav')
    assert encoder.embed_file(wav).shape == (32,)
    code, out, err = run_cli(capsys, '-c', tmp_path / 'S_3.pkl', '-i', wav, '-o', tmp_path / 'out', '--no-plot')
    assert code == 0, err
    assert 'step 3' in out and 'hyper-parameters carried by the checkpoint' in out
    assert np.load(tmp_path / 'out' / 'embeddings.npy').shape == (1, 32)


def test_the_api_is_importable_from_inference():
    """The names the README documents under Inference keep working."""
    assert inference.load_encoder is embedding.load_encoder and inference.SpeakerEncoder is embedding.SpeakerEncoder
    for name in ('evaluate_trials', 'read_trials', 'score_trials', 'VerificationResult'):
        assert getattr(inference, name) is getattr(verification, name)


def test_checkpoint_problems_are_one_line(checkpoint, tmp_path, capsys):
    with open('Hyper_Parameter.yaml', encoding='utf-8') as stream:
        settings = yaml.safe_load(stream)
    settings['Sound']['Mel_Dim'] = 40
    (tmp_path / 'mel40.yaml').write_text(yaml.safe_dump(settings))
    code, _, err = run_cli(capsys, '-c', checkpoint, '-hp', tmp_path / 'mel40.yaml', '-i', 'x.wav')
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert 'layer_Dict.Prenet.weight is [256, 80] in the checkpoint but [256, 40]' in err and 'Sound.Mel_Dim 40' in err

    settings['Sound']['Mel_Dim'], settings['Encoder']['LSTM']['Stacks'] = 80, 4
    (tmp_path / 'stacks4.yaml').write_text(yaml.safe_dump(settings))
    code, _, err = run_cli(capsys, '-c', checkpoint, '-hp', tmp_path / 'stacks4.yaml', '-i', 'x.wav')
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert 'layer_Dict.LSTM_3' in err and 'Encoder.LSTM.Stacks 4' in err

    code, _, err = run_cli(capsys, '-c', tmp_path / 'S_404.pkl', '-i', 'x.wav')
    assert code == 2 and err.strip() == f'Inference.py: {tmp_path / "S_404.pkl"}: no such checkpoint'

    torch.save({'Model': torch.load(checkpoint, weights_only=True)['Model'], 'Extra': __import__('argparse').Namespace(steps=1)}, tmp_path / 'code.pkl')
    code, _, err = run_cli(capsys, '-c', tmp_path / 'code.pkl', '-i', 'x.wav')
    assert code == 2 and len(err.strip().splitlines()) == 1 and 'cannot be loaded' in err


def test_verification(corpus, checkpoint, tmp_path, capsys, monkeypatch):
    trials = [
        '1 id10001/1zcIwhmdeo4/00001.wav id10001/GWXujl-xAVM/00002.wav',
        '0 id10001/1zcIwhmdeo4/00001.wav id10002/GWXujl-xAVM/00002.wav',
        '1 id10002/1zcIwhmdeo4/00001.wav id10002/GWXujl-xAVM/00001.wav',
        '0 id10002/1zcIwhmdeo4/00002.wav id10003/GWXujl-xAVM/00001.wav',
        '1 id10003/1zcIwhmdeo4/00001.wav id10003/GWXujl-xAVM/00002.wav',
        '0 id10003/1zcIwhmdeo4/00002.wav id10001/GWXujl-xAVM/00001.wav',
        '1 id10003/1zcIwhmdeo4/00001.wav id10003/missing/00001.wav',
        '0 id10002/1zcIwhmdeo4/00002.wav id10003/silent/00001.wav',
    ]
    (tmp_path / 'trials.txt').write_text('\n'.join(trials) + '\n')
    decoded = []
    real_mel_from_file = audio.mel_from_file
    monkeypatch.setattr(audio, 'mel_from_file', lambda path, *args: decoded.append(path) or real_mel_from_file(path, *args))

    code, out, err = run_cli(capsys, '-c', checkpoint, '--trials', tmp_path / 'trials.txt', '--root', corpus,
                             '-o', tmp_path / 'trials_only')
    assert code == 0, err
    assert len(decoded) == len(set(decoded)) == 12      # each file once, the missing one not at all
    assert 'over 6 of 8 trials (2 skipped' in out and 'EER' in out and 'minDCF' in out
    assert 'id10003/missing/00001.wav: missing' in out and 'id10003/silent/00001.wav: silent' in out
    lines = (tmp_path / 'trials_only' / 'scores.txt').read_text().splitlines()
    assert [line.rsplit(' ', 1)[0] for line in lines] == trials[:6]
    encoder = embedding.load_encoder(checkpoint)
    first, second = (encoder.embed_file(os.path.join(corpus, path)) for path in trials[0].split()[1:])
    assert float(lines[0].split()[-1]) == pytest.approx(float(first @ second), abs=1e-5)
    summary = __import__('json').loads((tmp_path / 'trials_only' / 'verification.json').read_text())
    assert summary['trials_scored'] == 6 and summary['trials_skipped'] == 2
    assert not (tmp_path / 'trials_only' / 'embeddings.npy').exists()
    for figure in ('det.png', 'score_histogram.png'):   # the verification pictures beside the numbers
        data = (tmp_path / 'trials_only' / figure).read_bytes()
        assert data.startswith(b'\x89PNG') and len(data) > 10_000

    # with -i as well, files of the input are not embedded a second time for the trials
    decoded.clear()
    code, out, err = run_cli(capsys, '-c', checkpoint, '-i', os.path.join(corpus, 'id10001'), '--trials',
                             tmp_path / 'trials.txt', '--root', corpus, '-o', tmp_path / 'both', '--no-plot')
    assert code == 0, err
    assert len(decoded) == len(set(decoded)) == 4 + 12 - 3   # id10001's 4 files, 3 of them in trials
    assert (tmp_path / 'both' / 'scores.txt').read_text() == '\n'.join(lines) + '\n'
    assert not (tmp_path / 'both' / 'det.png').exists()     # --no-plot


def test_evaluate_trials_api(corpus, checkpoint):
    """What Train.py calls: a model in memory, a trial list, EER as a fraction."""
    encoder = embedding.SpeakerEncoder(embedding.load_encoder(checkpoint).model, HP, workers=0)
    trials = [(1, 'id10001/1zcIwhmdeo4/00001.wav', 'id10001/GWXujl-xAVM/00001.wav'),
              (0, 'id10001/1zcIwhmdeo4/00001.wav', 'id10002/GWXujl-xAVM/00001.wav')]
    result = verification.evaluate_trials(encoder, trials, corpus)
    assert 0 <= result.eer <= 1 and 0 <= result.min_dcf and result.scores.shape == (2,) and not result.skipped_trials
    assert result.eer == (0.0 if result.scores[0] > result.scores[1] else 1.0)


def test_api(corpus, checkpoint):
    encoder = embedding.load_encoder(checkpoint, workers=0)
    paths = sorted(str(path) for path in __import__('pathlib').Path(corpus).glob('id*/[1G]*/*.wav'))[:5]
    one = encoder.embed_file(paths[0])
    assert one.dtype == np.float32 and one.shape == (256,) and np.linalg.norm(one) == pytest.approx(1, abs=1e-5)
    # a waveform at another rate and as int16 PCM gives (nearly) the file's embedding
    samples, rate = audio.read_audio(paths[0])
    np.testing.assert_allclose(encoder.embed_waveform(samples, rate), one, atol=1e-5)
    np.testing.assert_allclose(encoder.embed_waveform((samples * 32767).astype(np.int16), rate), one, atol=1e-3)
    # batched across files = one at a time, in input order; deterministic
    many = encoder.embed_files(paths)
    np.testing.assert_allclose(many, np.stack([encoder.embed_file(path) for path in paths]), atol=1e-5)
    np.testing.assert_array_equal(many, encoder.embed_files(paths))
    # decoding in a worker process, several batches: the same
    streamed = embedding.SpeakerEncoder(encoder.model, encoder.hp, batch_size=2, workers=1)
    np.testing.assert_allclose(streamed.embed_files(paths + paths[:1]), np.concatenate([many, many[:1]]), atol=1e-6)
    # decoding in this process on two threads, several batches, a silent file among them: the
    # same rows in input order, the file named, and numpy's BLAS threads as they were
    bad = os.path.join(corpus, 'id10003', 'silent', '00001.wav')
    blas_before = [pool['num_threads'] for pool in threadpoolctl.threadpool_info() if pool['user_api'] == 'blas']
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        threaded = embedding.SpeakerEncoder(encoder.model, encoder.hp, batch_size=2, workers=0)
        failures = []
        rows = threaded.embed_files(paths[:3] + [bad] + paths[3:], on_error=lambda path, reason: failures.append((path, reason)))
    finally:
        torch.set_num_threads(threads)
    np.testing.assert_allclose(np.delete(rows, 3, axis=0), many, atol=1e-6)
    assert np.isnan(rows[3]).all() and failures == [(bad, 'silent: every sample is zero')]
    assert [pool['num_threads'] for pool in threadpoolctl.threadpool_info() if pool['user_api'] == 'blas'] == blas_before
    # bfloat16: close to float32, and the float32 model it copied is left as it was
    fast = embedding.SpeakerEncoder(encoder.model, encoder.hp, workers=0, precision='bfloat16')
    assert (fast.embed_files(paths) * many).sum(axis=1).min() > 0.999
    assert encoder.model.layer_Dict['Linear'].weight.dtype == torch.float32
    speaker = encoder.embed_speaker([paths[0], (samples, rate), paths[1]])
    expected = one + one + many[1]
    np.testing.assert_allclose(speaker, expected / np.linalg.norm(expected), atol=1e-5)
    # bad files: an error naming the file, or NaN rows when asked to carry on
    with pytest.raises(audio.AudioRejected, match='00001.wav: silent'):
        encoder.embed_files([paths[0], bad])
    failures = []
    result = encoder.embed_files([paths[0], bad], on_error=lambda path, reason: failures.append(path))
    assert failures == [bad] and np.isnan(result[1]).all() and np.allclose(result[0], one, atol=1e-6)


def test_slice_modes():
    mel = np.random.default_rng(0).standard_normal((300, 80)).astype(np.float32)
    inference = HP.Train.Inference
    multi = embedding.mel_windows(mel, 'multi', inference.Samples, 64, inference.Overlap_Length)
    assert multi.shape == (5, 64, 80)
    np.testing.assert_array_equal(multi[0], mel[54:118])             # the centred 192 frames
    assert embedding.window_length(HP, 'single') == 160
    single = embedding.mel_windows(mel, 'single', inference.Samples, 160, inference.Overlap_Length)
    np.testing.assert_array_equal(single[0], mel[70:230])
    full = embedding.mel_windows(mel, 'full', inference.Samples, 64, inference.Overlap_Length)
    assert full.shape == (9, 64, 80) and np.array_equal(full[-1], mel[-64:])
    # auto (the default): every frame of a long utterance, the seed's windows for one of 192 frames or less
    np.testing.assert_array_equal(embedding.mel_windows(mel, 'auto', inference.Samples, 64, inference.Overlap_Length), full)
    for frames in (50, 192):
        np.testing.assert_array_equal(embedding.mel_windows(mel[:frames], 'auto', inference.Samples, 64, inference.Overlap_Length),
                                      embedding.mel_windows(mel[:frames], 'multi', inference.Samples, 64, inference.Overlap_Length))
    assert embedding.mel_windows(mel[:193], 'auto', inference.Samples, 64, inference.Overlap_Length).shape == (6, 64, 80)
    model = Encoder.from_hyper_parameters(HP).eval()
    embeddings = {}
    for slices in embedding.SLICE_MODES:
        encoder = embedding.SpeakerEncoder(model, HP, slices, workers=0)
        embeddings[slices] = encoder.embed_mels([mel, mel[:50]])
        np.testing.assert_array_equal(embeddings[slices], encoder.embed_mels([mel, mel[:50]]))
        assert embeddings[slices].shape == (2, 256)
    with torch.no_grad():
        raw = model(torch.from_numpy(full).transpose(1, 2)).mean(dim=0)
    np.testing.assert_allclose(embeddings['full'][0], (raw / raw.norm()).numpy(), atol=1e-6)


def test_npy_row_writer(tmp_path):
    for rows in (0, 1, 37):
        path = str(tmp_path / f'rows{rows}.npy')
        writer = npy_writer.NpyRowWriter(path, 256)
        data = np.random.default_rng(rows).standard_normal((rows, 256)).astype(np.float32)
        for row in data:
            writer.append(row)
        assert not os.path.exists(path)
        writer.close()
        np.testing.assert_array_equal(np.load(path), data.reshape(rows, 256))
        assert np.load(path, mmap_mode='r').shape == (rows, 256)


def test_torchscript_export(checkpoint, tmp_path, capsys):
    code, out, err = run_cli(capsys, '-c', checkpoint, '--export-torchscript', tmp_path / 'encoder.pt')
    assert code == 0, err and 'TorchScript' in out
    exported = torch.jit.load(str(tmp_path / 'encoder.pt'))
    model = embedding.load_encoder(checkpoint).model
    mels = torch.randn(3, 80, 100)
    with torch.inference_mode():
        np.testing.assert_allclose(exported(mels).numpy(), model(mels).numpy(), atol=1e-5)


def test_onnx_export(checkpoint, tmp_path, capsys):
    pytest.importorskip('onnx')
    onnxruntime = pytest.importorskip('onnxruntime')
    code, out, err = run_cli(capsys, '-c', checkpoint, '--export-onnx', tmp_path / 'encoder.onnx')
    assert code == 0, err
    assert 'ONNX' in out and 'not checked' not in out
    session = onnxruntime.InferenceSession(str(tmp_path / 'encoder.onnx'), providers=['CPUExecutionProvider'])
    mels = np.random.default_rng(0).standard_normal((4, 80, 90)).astype(np.float32)
    with torch.inference_mode():
        expected = embedding.load_encoder(checkpoint).model(torch.from_numpy(mels)).numpy()
    np.testing.assert_allclose(session.run(None, {'mels': mels})[0], expected, atol=1e-4)


def test_partials_from_the_command_line(corpus, checkpoint, tmp_path, capsys):
    code, out, err = run_cli(capsys, '-c', checkpoint, '-i', os.path.join(corpus, 'id10001'), '-o', tmp_path,
                             '--partials', '--no-plot')
    assert code == 0, err
    rows = [line.split('\t') for line in (tmp_path / 'partials.tsv').read_text().splitlines()[1:]]
    partials = np.load(tmp_path / 'partials.npy')
    assert partials.shape == (len(rows), 256) and [int(row[0]) for row in rows] == list(range(len(rows)))
    assert np.allclose(np.linalg.norm(partials, axis=1), 1, atol=1e-5)
    paths = sorted({row[1] for row in rows})
    assert len(paths) == 4 and f'{len(rows)} partial embeddings over time of 4 files' in out
    encoder = embedding.load_encoder(checkpoint, workers=0)
    for path in paths:   # each file's rows: its partials in order, from 0 s to its end, as the API gives them
        mine = [row for row in rows if row[1] == path]
        samples = audio.load_audio(path, 16000)
        _, expected, spans = encoder.embed_utterance(samples, 16000, return_partials=True)
        np.testing.assert_allclose(partials[[int(row[0]) for row in mine]], expected, atol=1e-5)
        assert float(mine[0][3]) == 0 and float(mine[-1][4]) == pytest.approx(len(samples) / 16000, abs=1e-4)
    code, out, err = run_cli(capsys, '-c', checkpoint, '--trials', tmp_path / 'x.txt', '--partials')
    assert code == 2 and 'give -i INPUT too' in err
