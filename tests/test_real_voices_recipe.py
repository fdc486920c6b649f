"""recipes/real_voices.py's prepare stage on tiny copies of its eleven sources' layouts."""
import os
import sys

import numpy as np
import pytest
import soundfile

from fixtures import corpora

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'recipes'))
import real_voices  # noqa: E402

SPEAKERS = 3


def word(speaker: int, take: int) -> np.ndarray:
    """A one-second 'word': 0.3 s of silence, 0.4 s of voice, 0.3 s of silence."""
    return corpora.voice(speaker, take, seconds=0.4)


def tiny_sources(root: str) -> str:
    for speaker in range(SPEAKERS):
        so = f'{root}/speechocean762'
        for take in range(3):
            corpora.write(f'{so}/WAVE/SPEAKER000{speaker}/000{speaker}0{take}.WAV', corpora.voice(speaker, take), 16000)
        for take in range(8):
            corpora.write(f'{root}/DSPSpeech-20/speech_data/1730{speaker}/1730{speaker}-0{take}-01.wav', word(speaker, take), 16000)
            corpora.write(f'{root}/PICO-tinyML-benchmark/MLTK_keyworkSpotting/dataset/w{take % 2}/'
                          f'ab{speaker}cd_nohash_{take}.wav', word(speaker + 3, take), 16000)
            corpora.write(f'{root}/arabic-speech-commands-dataset/dataset/w{take % 2}/0000000{speaker}_NO_{take}.wav',
                          word(speaker + 6, take), 16000)
        for source, folder in (('whisper', 'whisper/dataset'), ('SR', 'SR')):
            rows = []
            for take in range(3):
                clip = f'common_voice_{source}_{speaker}{take}.ogg'
                os.makedirs(f'{root}/{folder}/clips', exist_ok=True)
                soundfile.write(f'{root}/{folder}/clips/{clip}', corpora.voice(speaker + 9, take), 32000,
                                format='OGG', subtype='VORBIS')
                rows.append(f'{speaker}{"c" * 20}\t{clip}\tsome sentence\t2\t0')
            with open(f'{root}/{folder}/validated.tsv', 'a') as stream:
                if speaker == 0:
                    stream.write('client_id\tpath\tsentence\tup_votes\tdown_votes\n')
                stream.write('\n'.join(rows) + '\n')
        for take, folder in enumerate(('Names', 'Numbers', 'Addresses')):   # alphanumeric: one long recording each
            rate = 44100 if take else 48000
            corpora.write(f'{root}/alphanumeric-audio-dataset/audio_data/{folder}/R_{speaker}xYz.wav',
                          corpora.voice(speaker + 12, take, seconds=7.4, rate=rate), rate)
        gt = f'{root}/YourTTS/audios_demo/GT'
        for take in range(5):
            corpora.write(f'{gt}/VCTK/p22{speaker}/p22{speaker}_00{take}.wav', corpora.voice(speaker + 15, take, rate=22050), 22050)
            corpora.write(f'{gt}/MLS-PT/1199{speaker}/1199{speaker}_10229_00000{take}.wav',
                          corpora.voice(speaker + 18, take, seconds=12.4), 16000)
            corpora.write(f'{gt}/Libri-TTS/19{speaker}/19_{take}.wav', corpora.voice(speaker, take), 16000)   # reserved
            corpora.write(f'{root}/YourTTS/audios_demo/Exp.1/VCTK/p22{speaker}/p22{speaker}_00{take}.wav',   # synthesised
                          corpora.voice(speaker, take), 16000)
        for source in ('audio-for-Twi-TTS', 'speechdataset'):
            rows = []
            for take in range(5):
                clip = f'common_voice_{source[:3]}_{speaker}{take}.mp3'
                corpora.write(f'{root}/{source}/clips/{clip}', corpora.voice(speaker + 21, take), 16000, 'MPEG_LAYER_III')
                rows.append(f'{speaker}{"d" * 30}\t{clip}\tsentence\t2\t0')
            table = f'{root}/{source}/{"validated" if speaker % 2 else "other"}.tsv'
            new_table = not os.path.exists(table)
            with open(table, 'a') as stream:
                if new_table:
                    stream.write('client_id\tpath\tsentence\tup_votes\tdown_votes\n')
                stream.write('\n'.join(rows) + '\n')
        for take in range(3):   # mini-audio-datasets: more words of Speech Commands' speakers, and one new speaker
            corpora.write(f'{root}/mini-audio-datasets/speech_commands/w{take}/ab{speaker}cd_nohash_{take + 10}.wav',
                          word(speaker + 3, take + 10), 16000)
            corpora.write(f'{root}/mini-audio-datasets/speech_commands/w{take}/new{speaker}_nohash_{take}.wav',
                          word(speaker + 24, take), 16000)
    os.makedirs(f'{root}/PICO-tinyML-benchmark/MLTK_keyworkSpotting/dataset/_silence_')
    corpora.write(f'{root}/PICO-tinyML-benchmark/MLTK_keyworkSpotting/dataset/_silence_/1.wav', np.zeros(16000), 16000)
    for part in ('train', 'test'):
        os.makedirs(f'{root}/speechocean762/{part}')
    with open(f'{root}/speechocean762/train/wav.scp', 'w') as scp, open(f'{root}/speechocean762/train/utt2spk', 'w') as spk:
        for speaker in range(SPEAKERS):
            for take in range(3):
                scp.write(f'000{speaker}0{take}\tWAVE/SPEAKER000{speaker}/000{speaker}0{take}.WAV\n')
                spk.write(f'000{speaker}0{take} 000{speaker}\n')
    return root


@pytest.fixture
def small_recipe(monkeypatch):
    """One held-out speaker per source (none of speechdataset's), two utterances a speaker at least."""
    monkeypatch.setattr(real_voices, 'SOURCES', {name: (repository, int(name != 'speechdataset'), join, 2)
                                                 for name, (repository, _, join, _) in real_voices.SOURCES.items()})
    monkeypatch.setattr(real_voices, 'MIN_UTTERANCES', 2)


def test_prepare_joins_words_holds_speakers_out_and_writes_trials(tmp_path, small_recipe):
    corpus = str(tmp_path / 'corpus')
    real_voices.prepare(tiny_sources(str(tmp_path / 'sources')), corpus)
    train, held_out = os.path.join(corpus, 'Train'), os.path.join(corpus, 'Held_Out')
    assert sorted(os.listdir(train)) == ['ARCMD', 'CVEN', 'CVEN2', 'CVFA', 'CVTW', 'DSP20', 'SPCMD', 'VCTK']
    assert sorted(os.listdir(os.path.join(corpus, 'Kaldi', 'Train'))) == ['ANUM', 'MLSPT', 'SO762']
    for tag in ('ARCMD', 'CVEN', 'CVFA', 'CVTW', 'DSP20', 'VCTK'):   # 2 training speakers, 1 held out, never both
        assert len(os.listdir(os.path.join(train, tag))) == 2
        assert len(os.listdir(os.path.join(held_out, tag))) == 1
        assert not set(os.listdir(os.path.join(train, tag))) & set(os.listdir(os.path.join(held_out, tag)))
    assert len(os.listdir(os.path.join(train, 'CVEN2'))) == 3 and not os.path.exists(os.path.join(held_out, 'CVEN2'))
    # 8 one-second words of DSPSpeech-20 -> 2 utterances of 4 trimmed words joined with 0.15 s gaps
    speaker = sorted(os.listdir(os.path.join(train, 'DSP20')))[0]
    joined = sorted(os.listdir(os.path.join(train, 'DSP20', speaker)))
    assert joined == ['0000.wav', '0001.wav']
    samples, rate = soundfile.read(os.path.join(train, 'DSP20', speaker, joined[0]))
    assert rate == 16000 and 4 * 0.4 + 3 * 0.15 <= samples.size / rate < 4 * 0.6 + 3 * 0.15
    # mini-audio-datasets' words join their Speech Commands speaker (8 + 3 clips -> 3 utterances of 3);
    # its speakers with three clips only make one utterance, too few to train on
    for speaker in os.listdir(os.path.join(train, 'SPCMD')):
        assert len(os.listdir(os.path.join(train, 'SPCMD', speaker))) == 3
    assert not [name for name in os.listdir(os.path.join(train, 'SPCMD')) if name.startswith('new')]
    # only real recordings of YourTTS's gh-pages: GT/VCTK and GT/MLS-PT, never Libri-TTS or synthesised ones
    assert sorted(os.listdir(os.path.join(train, 'VCTK')) + os.listdir(os.path.join(held_out, 'VCTK'))) == \
        ['p220', 'p221', 'p222']
    linked = [os.path.realpath(os.path.join(folder, name)) for folder, _, names in os.walk(corpus) for name in names]
    assert not [path for path in linked if 'Libri-TTS' in path or 'Exp.1' in path]
    # long recordings (alphanumeric, MLS-PT) in pieces of about 3.5 s for training, whole when held out
    for tag, pieces in (('ANUM', 3 * 2), ('MLSPT', 5 * 4)):
        segments = [line.split() for line in open(os.path.join(corpus, 'Kaldi', 'Train', tag, 'segments'))]
        utt2spk = dict(line.split() for line in open(os.path.join(corpus, 'Kaldi', 'Train', tag, 'utt2spk')))
        assert len(segments) == 2 * pieces and set(utt2spk) == {utterance for utterance, *_ in segments}
        assert all(3.5 / 2 <= float(end) - float(start) < 3.5 * 1.5 for _, _, start, end in segments)
    assert len(os.listdir(os.path.join(held_out, 'ANUM', os.listdir(os.path.join(held_out, 'ANUM'))[0]))) == 3
    # speechocean762: Kaldi dirs for the two parts, relative paths made absolute
    scp = open(os.path.join(corpus, 'Kaldi', 'Train', 'SO762', 'wav.scp')).read().split()
    assert len(scp) == 2 * 2 * 3 and all(os.path.isfile(path) for path in scp[1::2])
    trials = [line.split() for line in open(os.path.join(held_out, 'trials.txt'))]
    files = {path for _, first, second in trials for path in (first, second)}
    # SO762 3, DSP20 2 (of 4 words), SPCMD 2 (of 3), ARCMD 2 (of 4), CV 3 + 3, ANUM 3, VCTK 5, MLSPT 5, CVTW 5
    assert len(files) == 3 + 2 + 2 + 2 + 3 + 3 + 3 + 5 + 5 + 5
    assert len(trials) == len(files) * (len(files) - 1) // 2
    assert all((target == '1') == (os.path.dirname(first) == os.path.dirname(second)) for target, first, second in trials)
    labels = [line.split() for line in open(os.path.join(held_out, 'labels.txt'))]
    assert len(labels) == len(files) and all(os.path.isfile(path) for path, _ in labels)


def test_prepare_again_changes_nothing(tmp_path, small_recipe):
    sources, corpus = tiny_sources(str(tmp_path / 'sources')), str(tmp_path / 'corpus')
    real_voices.prepare(sources, corpus)
    before = {os.path.join(folder, name): os.path.getmtime(os.path.join(folder, name))
              for folder, _, names in os.walk(os.path.join(corpus, 'Train')) for name in names}
    real_voices.prepare(sources, corpus)
    after = {os.path.join(folder, name): os.path.getmtime(os.path.join(folder, name))
             for folder, _, names in os.walk(os.path.join(corpus, 'Train')) for name in names}
    assert before == after


def test_a_missing_source_says_how_to_get_it(tmp_path, small_recipe):
    with pytest.raises(SystemExit, match='git clone https://github.com/jimbozhang/speechocean762'):
        real_voices.prepare(str(tmp_path), str(tmp_path / 'corpus'))


def test_the_ablation_variants_change_only_their_parts_of_the_recipe():
    import yaml
    import augmentation_ablation
    with open(os.path.join(ROOT, real_voices.HYPER_PARAMETERS), encoding='utf-8') as stream:
        recipe = yaml.safe_load(stream)
    full = recipe['Augmentation']
    chosen = augmentation_ablation.variants(recipe)
    assert list(chosen) == ['none', 'speed', 'noise and babble', 'rooms', 'masks', 'all', 'all but noise and babble']
    assert chosen['none'] == augmentation_ablation.OFF
    assert chosen['masks']['Time_Mask'] == full['Time_Mask'] and chosen['masks']['Reverb']['Probability'] == 0.0
    assert chosen['masks']['Speed'] == [] and chosen['speed']['Speed'] == full['Speed'] == [0.9, 1.1]
    assert chosen['all'] == full
    without = chosen['all but noise and babble']
    assert without['Noise']['Probability'] == without['Babble']['Probability'] == 0.0
    assert {key: without[key] for key in ('Speed', 'Reverb', 'Time_Mask', 'Frequency_Mask')} == \
        {key: full[key] for key in ('Speed', 'Reverb', 'Time_Mask', 'Frequency_Mask')}


def test_refine_is_the_recipe_less_noise_and_babble_from_round_2():
    import yaml
    with open(os.path.join(ROOT, real_voices.HYPER_PARAMETERS), encoding='utf-8') as stream:
        recipe = yaml.safe_load(stream)
    settings = real_voices.refine_settings(recipe)
    assert settings['Augmentation']['Noise']['Probability'] == settings['Augmentation']['Babble']['Probability'] == 0.0
    assert recipe['Augmentation']['Noise']['Probability'] > 0   # the recipe itself is untouched
    for key in ('Speed', 'Reverb', 'Time_Mask', 'Frequency_Mask'):
        assert settings['Augmentation'][key] == recipe['Augmentation'][key]
    assert settings['Train']['Learning_Rate']['Initial'] == 2.5e-4
    assert settings['Checkpoint_Path'] == os.path.join('Real_Voices', 'Refine', 'Checkpoint')
    assert os.path.isfile(os.path.join(ROOT, real_voices.ROUND_2_CHECKPOINT))


def test_evaluating_a_run_without_checkpoints_says_what_to_do(tmp_path):
    import subprocess
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'recipes', 'real_voices.py'), '--sources', str(tmp_path),
                             '--stage', 'evaluate', '--run', 'refine', '--step', '123456'],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and 'Traceback' not in result.stderr
    assert 'no checkpoint S_123456.pkl in Real_Voices/Refine/Checkpoint' in result.stderr
    assert 'train it first, or pass --run round2' in result.stderr


def test_export_writes_the_encoder_without_optimiser_state_and_its_figures(tmp_path, monkeypatch):
    import torch
    from ge2e_speaker.checkpoints import load_checkpoint, save_checkpoint
    monkeypatch.setattr(real_voices, 'ROOT', str(tmp_path))
    state = load_checkpoint(os.path.join(ROOT, real_voices.ROUND_2_CHECKPOINT))
    state['Steps'] = 7
    state['Optimizer'] = {'state': {}, 'param_groups': []}   # what a training checkpoint also holds
    checkpoints = tmp_path / 'Real_Voices' / 'Refine' / 'Checkpoint'
    checkpoints.mkdir(parents=True)
    save_checkpoint(state, str(checkpoints / 'S_7.pkl'))
    target, figures = tmp_path / 'package' / 'example_encoder', tmp_path / 'Figures'
    target.mkdir(parents=True)
    (target / 'S_4000.pkl').write_bytes(b'the previous example')
    with pytest.raises(SystemExit, match='has no tsne.png: run --stage evaluate --run refine --step 7 first'):
        real_voices.export('refine', 7, str(target), str(figures))
    assert (target / 'S_4000.pkl').read_bytes() == b'the previous example'   # nothing removed before the check
    evaluation = tmp_path / 'Real_Voices' / 'Refine' / 'Inference' / 'S_7'
    evaluation.mkdir(parents=True)
    for name in ('tsne.png', 'det.png', 'score_histogram.png'):
        (evaluation / name).write_bytes(name.encode())
    real_voices.export('refine', 7, str(target), str(figures))
    assert sorted(os.listdir(target)) == ['Hyper_Parameter.yaml', 'S_7.pkl']
    exported = torch.load(target / 'S_7.pkl', weights_only=True)
    assert 'Optimizer' not in exported and exported['Steps'] == 7
    for key, value in state['Model'].items():
        assert torch.equal(exported['Model'][key], value)
    assert sorted(os.listdir(figures)) == ['S7_real_held_out_det.png', 'S7_real_held_out_scores.png',
                                           'S7_real_held_out_tsne.png']
    assert (figures / 'S7_real_held_out_scores.png').read_bytes() == b'score_histogram.png'
