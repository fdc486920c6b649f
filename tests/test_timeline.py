"""Who speaks when: Inference.py --timeline on two real speakers one after the other."""
import os
import shutil

import numpy as np
import soundfile


from ge2e_speaker.embedding import EXAMPLE_CHECKPOINT

VOICES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'real_voices')


def test_timeline_follows_the_speaker_who_talks(inference_cli, tmp_path):
    first, _ = soundfile.read(os.path.join(VOICES, '0006', '000060015.flac'), dtype='float32')
    second, rate = soundfile.read(os.path.join(VOICES, '0575', '005750059.flac'), dtype='float32')
    soundfile.write(tmp_path / 'talk.flac', np.concatenate([first, second]), rate)
    # references: other recordings of the same people, a folder per speaker, and a third speaker
    for speaker, name in (('0006', '000060020'), ('0575', '005750067'), ('1309', '013090018')):
        os.makedirs(tmp_path / 'speakers' / speaker)
        shutil.copy(os.path.join(VOICES, speaker, f'{name}.flac'), tmp_path / 'speakers' / speaker)
    (tmp_path / 'speakers' / '1309' / 'broken.wav').write_bytes(b'RIFF, not audio')
    code, out, err = inference_cli('-c', EXAMPLE_CHECKPOINT, '--timeline', tmp_path / 'talk.flac',
                         '--speakers', tmp_path / 'speakers', '-o', tmp_path / 'out')
    assert code == 0, err
    assert 'speaker 1309: ' in out and 'broken.wav left out: unreadable' in out    # the bad reference, by name
    lines = (tmp_path / 'out' / 'timeline.tsv').read_text().splitlines()
    assert lines[0].split('\t') == ['start_s', 'end_s', '0006', '0575', '1309', 'best']
    rows = [line.split('\t') for line in lines[1:]]
    starts, ends = np.array([float(row[0]) for row in rows]), np.array([float(row[1]) for row in rows])
    assert starts[0] == 0 and ends[-1] == round((len(first) + len(second)) / rate, 3)   # the whole recording
    similarity = np.array([[float(value) for value in row[2:5]] for row in rows])
    assert np.abs(similarity).max() <= 1.0 + 1e-4
    switch = len(first) / rate
    inside_first, inside_second = ends <= switch, starts >= switch
    assert inside_first.sum() >= 3 and inside_second.sum() >= 3
    best = np.array([row[5] for row in rows])
    assert (best[inside_first] == '0006').mean() >= 0.75 and (best[inside_second] == '0575').mean() >= 0.75
    assert similarity[inside_first, 0].mean() > similarity[inside_first, 1].mean()
    assert similarity[inside_second, 1].mean() > similarity[inside_second, 0].mean()
    assert (tmp_path / 'out' / 'timeline.png').stat().st_size > 10_000
    assert f'Timeline of {tmp_path / "talk.flac"}: {len(rows)} partials against 3 speakers' in out


def test_timeline_needs_speakers_and_an_audible_recording(inference_cli, tmp_path):
    code, _, err = inference_cli('-c', EXAMPLE_CHECKPOINT, '--timeline', 'x.wav', '-o', tmp_path)
    assert code == 2 and '--timeline RECORDING and --speakers PATH... go together' in err
    soundfile.write(tmp_path / 'silence.wav', np.zeros(16000, np.float32), 16000)
    code, _, err = inference_cli('-c', EXAMPLE_CHECKPOINT, '--timeline', tmp_path / 'silence.wav',
                       '--speakers', tmp_path / 'missing', '-o', tmp_path / 'out')
    assert code == 2 and 'missing: no such speaker file or folder' in err and 'Traceback' not in err
