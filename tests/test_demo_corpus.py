"""The demo corpus generator (demo_corpus/) and its eSpeak NG wrapper (demo_corpus/speech_synth.py), in miniature."""
import filecmp
import multiprocessing
import os
import re

import numpy as np
import pytest
import soundfile

from demo_corpus import cli, grammar, planning, speech_synth, voices
from demo_corpus.trials import build_trials

TINY = ['--train-speakers', '3', '--test-speakers', '3', '--utterances', '3', '--test-utterances', '4',
        '--videos', '2', '--trials', '3', '--accents', 'en,en-us', '--variants', 'none,m3,f2,klatt,whisper', '-mw', '2']


def relative_files(root: str) -> list:
    return sorted(os.path.relpath(os.path.join(folder, name), root)
                  for folder, _, names in os.walk(root) for name in names)


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo'))
    assert cli.main(['-o', root, '--seed', '3'] + TINY) == 0
    return root


def read_speakers(root: str) -> list:
    with open(os.path.join(root, 'speakers.tsv'), encoding='utf-8') as stream:
        header, *rows = [line.rstrip('\n').split('\t') for line in stream]
    return [dict(zip(header, row)) for row in rows]


def test_vctk_layout(corpus):
    files = [path for path in relative_files(corpus) if path.startswith('VCTK/wav48/')]
    assert len(files) == 3 * 3
    for path in files:
        assert re.fullmatch(r'VCTK/wav48/(p\d{3})/\1_\d{3}\.wav', path), path
        info = soundfile.info(os.path.join(corpus, path))
        assert (info.samplerate, info.channels, info.subtype, info.format) == (48000, 1, 'PCM_16', 'WAV')
        samples, _ = soundfile.read(os.path.join(corpus, path))
        assert info.duration > 2.0 and np.sqrt(np.mean(samples ** 2)) > 1e-3, path
        transcript = os.path.join(corpus, path.replace('wav48', 'txt', 1)[:-4] + '.txt')
        assert open(transcript, encoding='utf-8').read().strip()


def test_voxceleb_layout_and_trials(corpus):
    files = [path for path in relative_files(corpus) if path.startswith('VC1_Test/wav/')]
    assert len(files) == 3 * 4
    for path in files:
        assert re.fullmatch(r'VC1_Test/wav/id\d{5}/[A-Za-z0-9_-]{11}/\d{5}\.wav', path), path
        samples, rate = soundfile.read(os.path.join(corpus, path))
        assert rate == 16000 and np.sqrt(np.mean(samples ** 2)) > 1e-3
    videos = {os.path.dirname(path) for path in files}
    assert len(videos) == 3 * 2
    with open(os.path.join(corpus, 'VC1_Test', 'trials.txt')) as stream:
        trials = [line.split() for line in stream]
    assert sum(label == '1' for label, *_ in trials) == sum(label == '0' for label, *_ in trials) == 3 * 3
    for label, enrolment, test in trials:
        assert label in '01' and enrolment != test
        assert os.path.isfile(os.path.join(corpus, 'VC1_Test', 'wav', enrolment))
        assert os.path.isfile(os.path.join(corpus, 'VC1_Test', 'wav', test))
        assert (enrolment.split('/')[0] == test.split('/')[0]) == (label == '1')


def test_no_voice_in_both_sets(corpus):
    speakers = read_speakers(corpus)
    train = [(s['accent'], s['variant']) for s in speakers if s['set'] == 'train']
    test = [(s['accent'], s['variant']) for s in speakers if s['set'] == 'test']
    assert len(set(train)) == 3 and len(set(test)) == 3 and not set(train) & set(test)
    # One of the five variants is held out whole (a quarter of them, rounded down, at least one).
    assert {variant for _, variant in test} - {variant for _, variant in train}


def test_same_seed_same_corpus_and_resume(corpus, tmp_path):
    again = str(tmp_path / 'again')
    assert cli.main(['-o', again, '--seed', '3'] + TINY) == 0
    files = relative_files(corpus)
    assert relative_files(again) == files
    assert filecmp.cmpfiles(corpus, again, files, shallow=False)[0] == files

    victim = os.path.join(again, next(path for path in files if path.endswith('.wav')))
    os.remove(victim)
    stale = victim + '.tmp-12345'
    with open(stale, 'wb') as stream:
        stream.write(b'half a file')
    kept = os.path.join(again, 'VCTK', 'wav48', 'p225', 'p225_002.wav')
    written_at = os.stat(kept).st_mtime_ns
    assert cli.main(['-o', again, '--seed', '3'] + TINY) == 0
    assert not os.path.exists(stale)
    assert os.stat(kept).st_mtime_ns == written_at   # skipped, not rewritten
    assert filecmp.cmp(victim, os.path.join(corpus, os.path.relpath(victim, again)), shallow=False)


def test_build_speakers_holds_out_whole_families():
    variants = [f'v{i}' for i in range(12)]
    families = {variant: int(variant[1:]) // 3 for variant in variants}   # four families of three
    train, test = planning.build_speakers(variants, ['en', 'en-us'], 10, 3, seed=0, families=families)
    held_out = {speaker.variant for speaker in test}
    assert len(held_out) == 3 and len({families[variant] for variant in held_out}) == 1
    assert not held_out & {speaker.variant for speaker in train}
    assert len({speaker.variant for speaker in train}) == 9   # spread: every training variant before any twice
    assert len({speaker.name for speaker in train + test}) == 13
    assert planning.build_speakers(variants, ['en', 'en-us'], 10, 3, seed=0, families=families) == (train, test)
    with pytest.raises(ValueError):
        planning.build_speakers(variants, ['en'], 10, 3, seed=0)


def test_build_trials_balanced_and_deterministic():
    files = {f'id{10270 + s}': [f'id{10270 + s}/video{v}/{u:05d}.wav' for v in range(2) for u in range(1, 4)]
             for s in range(4)}
    trials = build_trials(files, 5, seed=1)
    assert trials == build_trials(files, 5, seed=1)
    assert len(trials) == 4 * 10 and len(set(trials)) == len(trials)
    for label, enrolment, test in trials:
        same_speaker = enrolment.split('/')[0] == test.split('/')[0]
        assert same_speaker == (label == 1)
        if label == 1:   # 9 of a speaker's 15 pairs cross videos: those come first
            assert enrolment.split('/')[1] != test.split('/')[1]


def test_sentences_are_distinct():
    texts = grammar.sentences(np.random.default_rng(0), 200)
    assert len(set(texts)) == 200 and all(len(text.split()) >= 8 for text in texts)


def test_near_duplicates():
    means = {'a': np.zeros((3, 4)), 'b': np.full((3, 4), 0.1), 'c': np.full((3, 4), 2.0)}
    close, spread, closest = voices.near_duplicates(means, distance=0.5)
    assert [(a, b) for a, b, _ in close] == [('a', 'b')] and spread == 0.0 and closest[0][:2] == ('a', 'b')


def test_synthesis_is_reproducible_and_checks_voices():
    first, rate = speech_synth.synthesize('A small test.', 'en-us+whisper', seed=4)
    speech_synth.synthesize('Something else in between.', 'en+klatt', pitch=80)
    second, _ = speech_synth.synthesize('A small test.', 'en-us+whisper', seed=4)
    assert rate == 22050 and first.dtype == np.float32 and np.array_equal(first, second)
    with pytest.raises(speech_synth.SynthesisError, match='variant'):
        speech_synth.synthesize('Hello.', 'en+no-such-variant')
    with pytest.raises(speech_synth.SynthesisError, match='language'):
        speech_synth.synthesize('Hello.', 'xx-nowhere')


def _speak(text):
    return speech_synth.synthesize(text, 'en+m3', seed=1)[0]


def test_synthesis_in_worker_processes():
    expected = _speak('Hello from a worker.')
    for method in ('fork', 'spawn'):
        with multiprocessing.get_context(method).Pool(2) as pool:
            results = pool.map(_speak, ['Hello from a worker.'] * 2)
        assert all(np.array_equal(result, expected) for result in results), method


def test_command_line_errors_are_explained(tmp_path, capsys):
    assert cli.main(['-o', str(tmp_path), '--accents', 'en,zz', '-mw', '1']) == 2
    assert 'unknown eSpeak NG language' in capsys.readouterr().err
    assert cli.main(['-o', str(tmp_path), '--accents', 'en', '--variants', 'm3,f2', '-mw', '1']) == 2
    assert 'need more voices' in capsys.readouterr().err
