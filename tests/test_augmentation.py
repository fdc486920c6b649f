"""Augmentation: speed perturbation at pattern time; noise, babble, rooms and masks on training batches."""
import os

import numpy as np
import pytest
import torch
import yaml

from fixtures import corpora
from ge2e_speaker import audio, augmentation
from ge2e_speaker.augmentation import BatchAugmenter
from ge2e_speaker.hyper_parameters import HyperParameterError, load_hyper_parameters
from ge2e_speaker.patterns import load_pickle
from test_pattern_generate import assert_consistent, hp_file, run  # noqa: F401 (fixture)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def steady_voice(speaker: int, seconds: float = 2.0) -> np.ndarray:
    """A voice without leading or trailing silence, so that trimming leaves its length alone."""
    return corpora.voice(speaker, 0, seconds=seconds)[int(0.3 * 16000):-int(0.3 * 16000)]


def test_speed_perturbation_scales_the_duration_by_one_over_the_factor():
    samples = steady_voice(0)
    for factor in (0.9, 1.1):
        perturbed = augmentation.speed_perturb(samples, factor, 16000)
        assert abs(perturbed.size - samples.size / factor) <= 1
        # pitch and tempo together: the fundamental moves by the factor
        spectrum = np.abs(np.fft.rfft(samples)), np.abs(np.fft.rfft(perturbed))
        peaks = [np.argmax(power[:power.size // 8]) / size for power, size in zip(spectrum, (samples.size, perturbed.size))]
        assert peaks[1] / peaks[0] == pytest.approx(factor, rel=0.03)


def test_speed_factors_are_new_speakers_of_the_same_tag_and_never_of_the_evaluation_root(tmp_path, hp_file):
    for speaker in range(2):
        corpora.write(f'{tmp_path}/mine/anna{speaker}/a.wav', steady_voice(speaker), 16000)
        corpora.write(f'{tmp_path}/held/bob{speaker}/b.wav', steady_voice(speaker + 2), 16000)
    hp = run(hp_file, '-folder', f'{tmp_path}/mine', '-foldert', f'{tmp_path}/held', '--speed', '0.9,1.1')
    train = assert_consistent(hp.Train.Train_Pattern.Path)
    assert sorted(train['File_List_by_Speaker_Dict']) == [
        ('mine', speaker) for speaker in ('ANNA0', 'ANNA0-SP090', 'ANNA0-SP110', 'ANNA1', 'ANNA1-SP090', 'ANNA1-SP110')]
    assert 'mine/mine.ANNA0-SP090.a.PICKLE' in train['File_List']   # the seed's <Dataset>.<Speaker>.<stem>.PICKLE
    pattern = load_pickle(os.path.join(hp.Train.Train_Pattern.Path, 'mine/mine.ANNA0-SP110.a.PICKLE'))
    assert pattern['Speaker'] == 'ANNA0-SP110' and pattern['Dataset'] == 'mine'
    frames = {speaker: train['Mel_Length_Dict'][files[0]] for (_, speaker), files in train['File_List_by_Speaker_Dict'].items()}
    assert frames['ANNA0-SP090'] / frames['ANNA0'] == pytest.approx(1 / 0.9, rel=0.03)
    assert frames['ANNA0-SP110'] / frames['ANNA0'] == pytest.approx(1 / 1.1, rel=0.03)
    evaluation = assert_consistent(hp.Train.Eval_Pattern.Path)
    assert sorted(evaluation['File_List_by_Speaker_Dict']) == [('held', 'BOB0'), ('held', 'BOB1')]


def test_speed_comes_from_the_settings_and_bad_factors_are_refused(tmp_path, hp_file, capsys):
    from ge2e_speaker import pattern_generate
    settings = yaml.safe_load(open(hp_file))
    settings['Augmentation'] = {'Speed': [0.95]}
    with open(hp_file, 'w') as stream:
        yaml.safe_dump(settings, stream)
    corpora.write(f'{tmp_path}/mine/anna/a.wav', steady_voice(0), 16000)
    hp = run(hp_file, '-folder', f'{tmp_path}/mine')
    assert ('mine', 'ANNA-SP095') in assert_consistent(hp.Train.Train_Pattern.Path)['File_List_by_Speaker_Dict']
    with pytest.raises(SystemExit) as stop:
        pattern_generate.main(['-hp', hp_file, '-folder', f'{tmp_path}/mine', '--speed', '0.9,3'])
    assert stop.value.code == 2 and '--speed takes factors between 0.5 and 2' in capsys.readouterr().err
    settings['Augmentation'] = {'Speed': [0.9, 'fast']}
    with open(hp_file, 'w') as stream:
        yaml.safe_dump(settings, stream)
    with pytest.raises(HyperParameterError, match=r'Augmentation.Speed is \[0.9, .fast.\]; expected a list of speed factors'):
        load_hyper_parameters(hp_file)


def augmentation_settings(**changes):
    """The seed file's Augmentation section (all off) with changes: {'Noise.Probability': 1, ...}."""
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    for key, value in changes.items():
        section, name = key.split('.')
        setattr(getattr(hp.Augmentation, section), name, value)
    return hp


def speech_patterns(speakers: int = 4, per_speaker: int = 2, frames: int = 150) -> torch.Tensor:
    """Patterns [speakers * per_speaker, 80, frames] of voice-like signals, speaker-major."""
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    patterns = []
    for speaker in range(speakers):
        for take in range(per_speaker):
            mel = audio.mel_from_signal(corpora.voice(speaker, take, seconds=3.0), hp.Sound, 60)
            patterns.append(torch.from_numpy(mel[:frames].T.copy()))
    return torch.stack(patterns)


def test_the_seed_settings_augment_nothing():
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    assert not BatchAugmenter.enabled(hp.Augmentation) and hp.Augmentation.Speed == []


@pytest.mark.parametrize('snr', [0.0, 7.5, 20.0])
def test_added_noise_reaches_the_asked_snr(snr):
    hp = augmentation_settings(**{'Noise.Probability': 1.0, 'Noise.SNR': [snr, snr]})
    patterns = speech_patterns()
    augmenter = BatchAugmenter(hp.Augmentation, hp.Sound, 2, torch.device('cpu'))
    noisy = augmenter(patterns, step=3)
    clean_power = augmentation.pattern_to_power(patterns, hp.Sound.Max_Abs_Mel)
    added = augmentation.pattern_to_power(noisy, hp.Sound.Max_Abs_Mel) - clean_power
    measured = 10 * torch.log10(clean_power.mean(dim=(1, 2)) / added.mean(dim=(1, 2)))
    assert torch.all((measured - snr).abs() < 0.5), measured


def test_babble_comes_from_other_speakers_at_the_asked_snr():
    hp = augmentation_settings(**{'Babble.Probability': 1.0, 'Babble.SNR': [10, 10], 'Babble.Speakers': [3, 3]})
    patterns = speech_patterns()
    augmenter = BatchAugmenter(hp.Augmentation, hp.Sound, 2, torch.device('cpu'))
    power = augmentation.pattern_to_power(patterns, hp.Sound.Max_Abs_Mel)
    babble = augmenter._babble(power, torch.Generator().manual_seed(0))
    assert not torch.equal(babble[0], 3 * power[0]) and torch.all(babble.mean(dim=(1, 2)) > 0)
    added = augmentation.pattern_to_power(augmenter(patterns, step=0), hp.Sound.Max_Abs_Mel) - power
    measured = 10 * torch.log10(power.mean(dim=(1, 2)) / added.mean(dim=(1, 2)))
    assert torch.all((measured - 10).abs() < 0.5), measured


def test_a_simulated_rooms_impulse_response_is_causal_and_decays():
    rng = np.random.default_rng(0)
    for _ in range(5):
        response = augmentation.room_impulse_response(rng, 16000, (0.3, 0.8))
        energy = response.astype(np.float64) ** 2
        assert np.argmax(energy) == 0                 # it starts at the direct path: nothing comes before it
        windows = [energy[start:start + 800].sum() for start in range(0, energy.size - 800, 800)]   # 50 ms each
        assert windows[0] > windows[len(windows) // 2] > windows[-1]
        assert windows[-1] < windows[0] / 100


def test_a_room_spreads_sound_over_later_frames_only():
    hp = augmentation_settings(**{'Reverb.Probability': 1.0, 'Reverb.Rooms': 4})
    envelopes = augmentation.room_envelopes(np.random.default_rng(1), hp.Sound, 4, (0.3, 0.6))
    assert torch.allclose(envelopes.sum(dim=2), torch.ones(4, 80))
    click = torch.zeros(4, 80, 100)
    click[:, :, 40] = 1.0
    heard = augmentation.reverberate(click, envelopes)
    assert torch.all(heard[:, :, :40] == 0) and torch.all(heard[:, :, 41:60].sum(dim=2) > 0)
    assert torch.allclose(heard.sum(dim=2), torch.ones(4, 80), atol=1e-5)


def test_masks_have_the_asked_widths():
    generator = torch.Generator().manual_seed(0)
    starts, widths = augmentation.mask_spans(2, 10, 150, 500, generator)
    assert widths.min() == 0 and widths.max() == 10 and torch.all(starts + widths <= 150)
    mask = augmentation.span_mask(torch.tensor([[5, 50]]), torch.tensor([[3, 7]]), 100)
    assert mask[0].nonzero().squeeze(1).tolist() == [5, 6, 7] + list(range(50, 57))
    hp = augmentation_settings(**{'Time_Mask.Count': 1, 'Time_Mask.Width': 12,
                                  'Frequency_Mask.Count': 1, 'Frequency_Mask.Width': 6})
    patterns = speech_patterns()
    masked = BatchAugmenter(hp.Augmentation, hp.Sound, 2, torch.device('cpu'))(patterns, step=5)
    for utterance in range(len(patterns)):
        changed = masked[utterance] != patterns[utterance]
        frames = changed.all(dim=0).sum().item()    # whole frames masked
        bands = changed.all(dim=1).sum().item()     # whole bands masked
        assert frames <= 12 and bands <= 6
        assert changed.sum() <= frames * 80 + bands * patterns.shape[2]


def test_augmentation_is_reproducible_per_step_and_finite():
    hp = augmentation_settings(**{'Noise.Probability': 0.5, 'Babble.Probability': 0.5, 'Reverb.Probability': 0.5,
                                  'Reverb.Rooms': 4, 'Time_Mask.Count': 2, 'Frequency_Mask.Count': 2})
    patterns = speech_patterns()
    augmenter = BatchAugmenter(hp.Augmentation, hp.Sound, 2, torch.device('cpu'))
    first = augmenter(patterns, step=7)
    assert torch.equal(first, BatchAugmenter(hp.Augmentation, hp.Sound, 2, torch.device('cpu'))(patterns, step=7))
    assert not torch.equal(first, augmenter(patterns, step=8))
    assert torch.isfinite(first).all() and first.abs().max() <= hp.Sound.Max_Abs_Mel
    assert first.shape == patterns.shape and first.dtype == patterns.dtype


def test_bad_augmentation_settings_say_what_is_expected(tmp_path):
    settings = yaml.safe_load(open(os.path.join(ROOT, 'Hyper_Parameter.yaml')))
    for section, value, expected in (('Noise', {'Probability': 1.5}, 'Augmentation.Noise.Probability is 1.5; expected a number from 0 to 1'),
                                     ('Reverb', {'RT60': [0.9, 0.2]}, 'Augmentation.Reverb.RT60 is [0.9, 0.2]; expected [LOW, HIGH]')):
        settings['Augmentation'] = {section: value}
        path = tmp_path / 'bad.yaml'
        path.write_text(yaml.safe_dump(settings))
        with pytest.raises(HyperParameterError, match=expected.replace('[', r'\[').replace(']', r'\]').replace('.', r'\.')):
            load_hyper_parameters(str(path))
