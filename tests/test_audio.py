"""The mel recipe (audio.py) against an independent librosa transcription of the seed's."""
import librosa
import numpy as np
import pytest

from ge2e_speaker import audio
from ge2e_speaker.hyper_parameters import load_hyper_parameters
from fixtures.corpora import voice, write
from fixtures.seed_recipe import seed_mel

SOUND = load_hyper_parameters('Hyper_Parameter.yaml').Sound


@pytest.mark.parametrize('rate, subtype, channels', [
    (48000, 'PCM_16', 1), (44100, 'PCM_24', 2), (22050, 'PCM_32', 1), (16000, 'FLOAT', 1),
    (8000, 'PCM_U8', 1), (24000, 'PCM_16', 2)])
@pytest.mark.parametrize('top_db', [15, 23, 60])
def test_recipe_matches_the_seed(tmp_path, rate, subtype, channels, top_db):
    samples = voice(2, 3, rate=rate)
    if channels == 2:
        samples = np.stack([samples, 0.5 * voice(3, 1, rate=rate)], axis=1)
    path = write(str(tmp_path / 'utterance.wav'), samples, rate, subtype)
    expected = seed_mel(path, top_db)
    mel = audio.mel_from_file(path, SOUND, top_db)
    assert mel.dtype == np.float32 and mel.shape == expected.shape and mel.shape[1] == 80
    assert np.abs(mel - expected).max() < 1e-3
    # the edge frames (reflect padding) too
    assert np.abs(mel[[0, 1, -2, -1]] - expected[[0, 1, -2, -1]]).max() < 1e-3


def test_trim_equals_librosa():
    rng = np.random.default_rng(0)
    for length in (100, 1000, 16001):
        signal = rng.standard_normal(length) * np.linspace(0, 1, length) ** 4
        for top_db in (10, 23, 60):
            expected = librosa.effects.trim(signal, top_db=top_db, frame_length=32, hop_length=16)[0]
            start, end = audio.trim_bounds(signal, top_db, coefficient=0.0)   # of the signal itself
            np.testing.assert_array_equal(signal[start:end], expected)


def test_stft_magnitude_equals_librosa_reflect():
    signal = np.random.default_rng(1).standard_normal(5000)
    expected = np.abs(librosa.stft(signal, n_fft=2048, hop_length=256, win_length=1024, pad_mode='reflect')).T
    np.testing.assert_allclose(audio.magnitude_spectrogram(signal, 2048, 1024, 256), expected, rtol=1e-4, atol=1e-4)


def test_rejections_say_why(tmp_path):
    empty = write(str(tmp_path / 'empty.wav'), np.zeros(0, np.float32), 16000)
    silent = write(str(tmp_path / 'silent.wav'), np.zeros(16000, np.float32), 16000)
    garbage = tmp_path / 'garbage.wav'
    garbage.write_bytes(b'RIFF not really a wave file')
    short = write(str(tmp_path / 'short.wav'), voice(0, 0, seconds=0.2), 16000)
    for path, reason in ((empty, 'empty'), (silent, 'silent'), (str(garbage), 'unreadable'), (short, 'too short')):
        with pytest.raises(audio.AudioRejected) as error:
            audio.mel_from_file(path, SOUND, 15, min_frames=64)
        assert str(error.value).startswith(reason)
    assert audio.mel_from_file(short, SOUND, 15).shape[0] < 64   # kept when no minimum is asked for


def test_m4a_decodes_like_its_wav(tmp_path):
    from fixtures.corpora import has_ffmpeg, voxceleb
    if not has_ffmpeg():
        pytest.skip('ffmpeg not installed')
    root = voxceleb(str(tmp_path), ids=(10001,), videos=('abc',), utterances=1, extension='m4a')
    mel = audio.mel_from_file(f'{root}/aac/id10001/abc/00001.m4a', SOUND, 23)
    assert mel.shape[1] == 80 and mel.shape[0] > 64


@pytest.mark.parametrize('sample_rate, n_fft, mel_dim', [(16000, 2048, 80), (22050, 1024, 80), (24000, 2048, 128)])
def test_mel_filterbank_equals_librosa(sample_rate, n_fft, mel_dim):
    expected = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=mel_dim)
    np.testing.assert_allclose(audio.mel_basis(sample_rate, n_fft, mel_dim), expected, rtol=1e-5, atol=1e-8)


def _with(samples: np.ndarray, index, value) -> np.ndarray:
    samples = samples.copy()
    samples[index] = value
    return samples


@pytest.mark.parametrize('name, samples', [
    ('nan', _with(voice(0, 1), 9000, np.nan)),
    ('inf', _with(voice(0, 1), slice(9000, 9100), np.inf)),
    ('all_nan', np.full(16000, np.nan, np.float32)),
])
def test_non_finite_audio_is_rejected_as_such(tmp_path, name, samples):
    """A float WAV with NaN or Inf is 'non-finite samples', not a pattern of NaN nor 'silent'."""
    path = write(str(tmp_path / f'{name}.wav'), samples, 16000, 'FLOAT')
    with pytest.raises(audio.AudioRejected, match='^non-finite samples'):
        audio.mel_from_file(path, SOUND, 15)
    with pytest.raises(audio.AudioRejected, match='^non-finite samples'):   # arrays, as Inference.embed_waveform passes them
        audio.mel_from_signal(samples, SOUND, 15)


def test_trim_takes_no_nan_for_a_floor():
    signal = np.concatenate([np.zeros(800), voice(0, 1)[:8000], [np.nan], np.zeros(800)])
    with pytest.raises(audio.AudioRejected, match='^non-finite samples'):
        audio.trim_bounds(signal, 15)


def test_a_long_recording_in_blocks_equals_the_whole_file(tmp_path, monkeypatch):
    """40 s at 48 kHz, one pattern: blocks of any size give the whole-file computation, and the seed's."""
    samples = np.concatenate([voice(speaker % 5, speaker, seconds=3.4, rate=48000) for speaker in range(10)])
    path = write(str(tmp_path / 'long.wav'), samples, 48000)
    monkeypatch.setattr(audio, 'BLOCK_SAMPLES', 1 << 40)
    whole = audio.mel_from_file(path, SOUND, 23)
    assert whole.shape[0] > 2400   # one pattern of the whole recording, trimmed
    for block in (1000, 4097, 1 << 17):
        monkeypatch.setattr(audio, 'BLOCK_SAMPLES', block)
        mel = audio.mel_from_file(path, SOUND, 23)
        assert mel.shape == whole.shape and np.abs(mel - whole).max() < 1e-4
    assert np.abs(whole - seed_mel(path, 23)).max() < 1e-3


def test_a_long_recording_needs_little_memory(tmp_path):
    """A worker's peak on 2 minutes at 48 kHz (python benchmarks/memory_peak.py --minutes 2): whole-file
    arrays took about 200 MB above the imports; in blocks it takes the 16 kHz signal and its copy."""
    from fixtures.corpora import write_speech_like
    from fixtures.memory import peak
    write_speech_like(str(tmp_path / 'long.wav'), 120, 48000)
    frames, worker = peak(str(tmp_path / 'long.wav'))
    _, baseline = peak('')
    assert frames > 7400 and worker - baseline < 50


def test_a_segment_read_in_blocks_equals_the_slice(tmp_path, monkeypatch):
    """A Kaldi segment (start-end seconds) read a block at a time = the slice of the whole recording."""
    path = write(str(tmp_path / 'recording.wav'), np.concatenate([voice(1, 1, rate=44100), voice(2, 2, rate=44100)]), 44100)
    samples, rate = audio.read_audio(path)
    expected = audio.resample(samples[round(0.7 * rate):round(3.1 * rate)], rate, 16000)
    monkeypatch.setattr(audio, 'BLOCK_SAMPLES', 5000)
    np.testing.assert_array_equal(audio.load_audio(path, 16000, 0.7, 3.1), expected)
    with pytest.raises(audio.AudioRejected, match="^empty: the segment 9-10 s lies beyond the recording's end"):
        audio.load_audio(path, 16000, 9.0, 10.0)
