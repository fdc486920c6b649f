"""recipes/real_voices.py's prepare stage on tiny copies of its six sources' layouts."""
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
    """One held-out speaker per source, two utterances a speaker at least."""
    monkeypatch.setattr(real_voices, 'SOURCES', {name: (repository, 1, join)
                                                 for name, (repository, _, join) in real_voices.SOURCES.items()})
    monkeypatch.setattr(real_voices, 'MIN_UTTERANCES', 2)


def test_prepare_joins_words_holds_speakers_out_and_writes_trials(tmp_path, small_recipe):
    corpus = str(tmp_path / 'corpus')
    real_voices.prepare(tiny_sources(str(tmp_path / 'sources')), corpus)
    train, held_out = os.path.join(corpus, 'Train'), os.path.join(corpus, 'Held_Out')
    assert sorted(os.listdir(train)) == ['ARCMD', 'CVEN', 'CVFA', 'DSP20', 'SPCMD']
    for tag in os.listdir(train):   # every source: 2 training speakers, 1 held out, never both
        assert len(os.listdir(os.path.join(train, tag))) == 2
        assert len(os.listdir(os.path.join(held_out, tag))) == 1
        assert not set(os.listdir(os.path.join(train, tag))) & set(os.listdir(os.path.join(held_out, tag)))
    # 8 one-second words of DSPSpeech-20 -> 2 utterances of 4 trimmed words joined with 0.15 s gaps
    speaker = sorted(os.listdir(os.path.join(train, 'DSP20')))[0]
    joined = sorted(os.listdir(os.path.join(train, 'DSP20', speaker)))
    assert joined == ['0000.wav', '0001.wav']
    samples, rate = soundfile.read(os.path.join(train, 'DSP20', speaker, joined[0]))
    assert rate == 16000 and 4 * 0.4 + 3 * 0.15 <= samples.size / rate < 4 * 0.6 + 3 * 0.15
    # speechocean762: Kaldi dirs for the two parts, relative paths made absolute
    scp = open(os.path.join(corpus, 'Kaldi', 'Train', 'SO762', 'wav.scp')).read().split()
    assert len(scp) == 2 * 2 * 3 and all(os.path.isfile(path) for path in scp[1::2])
    trials = [line.split() for line in open(os.path.join(held_out, 'trials.txt'))]
    files = {path for _, first, second in trials for path in (first, second)}
    assert len(files) == 3 + 2 + 2 + 2 + 3 + 3   # SO762 3, DSP20 2 (of 4 words), SPCMD 2 (of 3), ARCMD 2 (of 4), CV 3 + 3
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
