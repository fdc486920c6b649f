"""Users' own corpora: Kaldi data directories (-kaldi, -kaldit) and speaker folders (-folder, -foldert)."""
import os

import numpy as np
import pytest
import soundfile

from fixtures import corpora
from ge2e_speaker import pattern_generate
from ge2e_speaker.hyper_parameters import load_hyper_parameters
from test_pattern_generate import assert_consistent, hp_file, metadata_of, run  # noqa: F401 (fixture)


def kaldi_corpus(root, segments=False, relative=False, speakers=('spk1', 'spk2'), utterances=3):
    """root/WAVE/<speaker>/<utt>.wav and a data dir root/data/train; with segments, one recording
    per speaker cut into `utterances` segments of 1.2 s."""
    scp, utt2spk, segment_lines = [], [], []
    for index, speaker in enumerate(speakers):
        if segments:
            recording = f'{speaker}-rec'
            pieces = [corpora.voice(index, utterance, seconds=1.2) for utterance in range(utterances)]
            path = corpora.write(f'{root}/WAVE/{speaker}/{recording}.wav', np.concatenate(pieces), 16000)
            scp.append(f'{recording} {os.path.relpath(path, root) if relative else path}')
            offset = 0.0
            for utterance, piece in enumerate(pieces):
                length = piece.size / 16000
                segment_lines.append(f'{speaker}-{utterance} {recording} {offset:.3f} {offset + length:.3f}')
                utt2spk.append(f'{speaker}-{utterance} {speaker}')
                offset += length
        else:
            for utterance in range(utterances):
                path = corpora.write(f'{root}/WAVE/{speaker}/{speaker}-{utterance}.wav',
                                     corpora.voice(index, utterance), 16000)
                scp.append(f'{speaker}-{utterance} {os.path.relpath(path, root) if relative else path}')
                utt2spk.append(f'{speaker}-{utterance} {speaker}')
    data = os.path.join(root, 'train')   # relative paths are relative to its parent, as in speechocean762
    os.makedirs(data)
    for name, lines in (('wav.scp', scp), ('utt2spk', utt2spk), ('segments', segment_lines)):
        if lines:
            with open(os.path.join(data, name), 'w') as stream:
                stream.write('\n'.join(lines) + '\n')
    return data


@pytest.mark.parametrize('segments', [False, True])
@pytest.mark.parametrize('relative', [False, True])
def test_kaldi_data_dir(tmp_path, hp_file, monkeypatch, segments, relative):
    data = kaldi_corpus(str(tmp_path / 'corpus'), segments, relative)
    monkeypatch.chdir(tmp_path)   # not the corpus root: relative paths resolve against the data dir's parent
    hp = run(hp_file, '-kaldi', f'MYDATA={data}')
    metadata = assert_consistent(hp.Train.Train_Pattern.Path)
    assert {key: len(files) for key, files in metadata['File_List_by_Speaker_Dict'].items()} == \
        {('MYDATA', 'SPK1'): 3, ('MYDATA', 'SPK2'): 3}
    assert 'MYDATA/MYDATA.SPK1.spk1-0.PICKLE' in metadata['File_List']
    if segments:   # each segment is its 1.2 s piece, not the whole 3.6 s recording
        lengths = [metadata['Mel_Length_Dict'][file] for file in metadata['File_List']]
        assert max(lengths) < 1.2 * 16000 / 256 + 2


def test_relative_paths_try_the_current_folder_first(tmp_path, hp_file, monkeypatch):
    data = kaldi_corpus(str(tmp_path / 'corpus'), relative=True)
    monkeypatch.chdir(tmp_path / 'corpus')
    hp = run(hp_file, '-kaldi', data)
    assert len(metadata_of(hp.Train.Train_Pattern.Path)['File_List']) == 6


def run_with_extra_entries(data: str, hp_file: str, capsys, wav_scp: str, utt2spk: str) -> tuple:
    """Append lines to a Kaldi directory's wav.scp and utt2spk, generate, and return (hp, printed output)."""
    for name, lines in (('wav.scp', wav_scp), ('utt2spk', utt2spk)):
        with open(os.path.join(data, name), 'a') as stream:
            stream.write(lines)
    hp = run(hp_file, '-kaldi', data)
    return hp, capsys.readouterr().out


def test_piped_entries_are_refused_and_never_run(tmp_path, hp_file, capsys):
    data = kaldi_corpus(str(tmp_path / 'corpus'))
    witness = tmp_path / 'pwned'
    hp, out = run_with_extra_entries(data, hp_file, capsys, f'evil-0 touch {witness} |\n', 'evil-0 spk1\n')
    assert not witness.exists()
    assert f'{data}/wav.scp:7: evil-0 is a shell command (touch {witness} |), which is never run' in out
    assert 'evil-0: not in wav.scp' in out
    assert len(metadata_of(hp.Train.Train_Pattern.Path)['File_List']) == 6
    assert 'skipped: bad list entry: 2' in out


def test_bad_lines_are_reported_by_line_and_counted(tmp_path, hp_file, capsys):
    data = kaldi_corpus(str(tmp_path / 'corpus'))
    hp, out = run_with_extra_entries(
        data, hp_file, capsys, f'gone-0 {tmp_path}/nowhere.wav\nlonely-0 {tmp_path}/corpus/WAVE/spk1/spk1-0.wav\n',
        'gone-0 spk1\nghost-0 spk2\nbroken\n')
    assert f'{data}/wav.scp:7: gone-0: no such file: {tmp_path}/nowhere.wav' in out
    assert f'{data}/utt2spk:8: ghost-0: not in wav.scp' in out
    assert f'{data}/utt2spk:9: malformed: expected 2 fields, found 1' in out
    assert f'{data}/utt2spk: lonely-0: no speaker (not in utt2spk): skipped' in out
    assert '0 rejected, 5 list entries skipped' in out
    assert len(metadata_of(hp.Train.Train_Pattern.Path)['File_List']) == 6


def test_kaldi_dir_without_utt2spk_says_what_is_missing(tmp_path, hp_file, capsys):
    data = kaldi_corpus(str(tmp_path / 'corpus'))
    os.remove(os.path.join(data, 'utt2spk'))
    assert pattern_generate.main(['-hp', hp_file, '-kaldi', data]) == 2
    assert f'{data}: no utt2spk: a Kaldi data directory needs wav.scp' in capsys.readouterr().err


def speaker_folders(root, extensions=('.wav', '.FLAC', '.ogg')):
    """root/<speaker>/[session/]<n><ext>: three speakers, one with files two folders deep."""
    for index, speaker in enumerate(('alice', 'bob', 'carol')):
        for utterance, extension in enumerate(extensions):
            folder = os.path.join(root, speaker, 'session1', 'take') if speaker == 'carol' else os.path.join(root, speaker)
            path = os.path.join(folder, f'{utterance}{extension}')
            os.makedirs(folder, exist_ok=True)
            soundfile.write(path, corpora.voice(index, utterance), 16000,
                            format={'.wav': 'WAV', '.flac': 'FLAC', '.ogg': 'OGG'}[extension.lower()],
                            subtype='VORBIS' if extension.lower() == '.ogg' else 'PCM_16')
    with open(os.path.join(root, 'README.txt'), 'w') as stream:
        stream.write('not audio\n')
    return root


def test_speaker_folders_any_depth_and_case(tmp_path, hp_file):
    hp = run(hp_file, '-folder', speaker_folders(str(tmp_path / 'voices')))
    metadata = assert_consistent(hp.Train.Train_Pattern.Path)
    assert {key: len(files) for key, files in metadata['File_List_by_Speaker_Dict'].items()} == \
        {('voices', 'ALICE'): 3, ('voices', 'BOB'): 3, ('voices', 'CAROL'): 3}
    assert 'voices/voices.CAROL.session1_take_2.PICKLE' in metadata['File_List']


def test_two_corpora_keep_their_speakers_apart_and_eval_flags(tmp_path, hp_file):
    """The same speaker names in two corpora are two speakers; -foldert and -kaldit fill the eval root."""
    first = speaker_folders(str(tmp_path / 'a' / 'voices'))
    second = speaker_folders(str(tmp_path / 'b' / 'voices'))
    data = kaldi_corpus(str(tmp_path / 'k'))
    hp = run(hp_file, '-folder', first, '-folder', f'OTHER={second}', '-foldert', f'HELD={first}',
             '-kaldit', data)
    train = metadata_of(hp.Train.Train_Pattern.Path)['File_List_by_Speaker_Dict']
    assert sorted(train) == [('OTHER', 'ALICE'), ('OTHER', 'BOB'), ('OTHER', 'CAROL'),
                             ('voices', 'ALICE'), ('voices', 'BOB'), ('voices', 'CAROL')]
    held = metadata_of(hp.Train.Eval_Pattern.Path)['File_List_by_Speaker_Dict']
    assert sorted(held) == [('HELD', 'ALICE'), ('HELD', 'BOB'), ('HELD', 'CAROL'), ('train', 'SPK1'), ('train', 'SPK2')]
    for metadata in (metadata_of(hp.Train.Train_Pattern.Path), metadata_of(hp.Train.Eval_Pattern.Path)):
        assert set(metadata) >= {'Spectrogram_Dim', 'Mel_Dim', 'File_List', 'Mel_Length_Dict', 'Dataset_Dict',
                                 'File_List_by_Speaker_Dict', 'Speaker_Dict'}


def test_one_tag_twice_is_refused_with_a_how_to(tmp_path, hp_file, capsys):
    first = speaker_folders(str(tmp_path / 'a' / 'voices'))
    second = speaker_folders(str(tmp_path / 'b' / 'voices'))
    assert pattern_generate.main(['-hp', hp_file, '-folder', first, '-folder', second]) == 2
    assert f'the dataset tag voices is already taken by {first}; name this corpus: -folder OTHER_TAG={second}' \
        in capsys.readouterr().err
    assert not os.path.exists(load_hyper_parameters(hp_file).Train.Train_Pattern.Path)


def test_trim_threshold_of_an_unnamed_tag_is_the_default(tmp_path, hp_file):
    sound = load_hyper_parameters(hp_file).Sound
    assert pattern_generate.trim_top_dB(sound, 'VCTK') == 15
    assert pattern_generate.trim_top_dB(sound, 'voices') == sound.Trim_Top_dB.Default == 23


def generate_exit(capsys, hp_file, *arguments):
    code = pattern_generate.main(['-hp', hp_file, '-mw', '1', *arguments])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def named_speaker_folders(root, *names):
    for index, name in enumerate(names):
        for utterance in range(2):
            corpora.write(f'{root}/{name}/u{utterance}.wav', corpora.voice(index, utterance), 16000)
    return root


@pytest.mark.parametrize('first, second, speaker_id', [('Anna', 'anna', 'ANNA'), ('jo.smith', 'JO_SMITH', 'JO_SMITH')])
def test_folders_of_one_speaker_id_are_refused_before_writing(tmp_path, hp_file, capsys, first, second, speaker_id):
    root = named_speaker_folders(str(tmp_path / 'people'), first, second, 'bob')
    code, text = generate_exit(capsys, hp_file, '-folder', root)
    assert code == 2 and 'Traceback' not in text
    assert (f"-folder {root}: {sorted([first, second])[0]!r} and {sorted([first, second])[1]!r} would both be speaker "
            f"{speaker_id}") in text and 'Rename one folder' in text and 'Nothing was written.' in text
    assert not os.path.exists(tmp_path / 'patterns')
    os.rename(f'{root}/{second}', f'{root}/{second}_2')     # the fix the message gives
    hp = run(hp_file, '-folder', root)
    assert sorted(metadata_of(hp.Train.Train_Pattern.Path)['File_List_by_Speaker_Dict']) == \
        sorted(('people', name) for name in (speaker_id, f'{second}_2'.upper().replace('.', '_'), 'BOB'))


def test_kaldi_speakers_of_one_id_are_refused(tmp_path, hp_file, capsys):
    data = kaldi_corpus(str(tmp_path / 'corpus'), speakers=('Anna', 'anna'))
    code, text = generate_exit(capsys, hp_file, '-kaldi', data)
    assert code == 2 and f"-kaldi {data}: 'Anna' and 'anna' would both be speaker ANNA" in text
    assert 'Rename one speaker id in utt2spk' in text and not os.path.exists(tmp_path / 'patterns')


def test_two_recordings_of_one_pattern_name_are_refused(tmp_path, hp_file, capsys):
    root = str(tmp_path / 'people')
    first = corpora.write(f'{root}/spk/a_b.wav', corpora.voice(0, 0), 16000)
    second = corpora.write(f'{root}/spk/a/b.wav', corpora.voice(0, 1), 16000)
    code, text = generate_exit(capsys, hp_file, '-folder', root)
    assert code == 2 and 'Traceback' not in text and 'same recording' not in text
    assert f'{second} and {first} would both be people/people.SPK.a_b.PICKLE' in text or \
        f'{first} and {second} would both be people/people.SPK.a_b.PICKLE' in text
    assert not os.path.exists(tmp_path / 'patterns')
