"""The demo corpus's command line: python -m demo_corpus -o Demo/Corpus [options].

    python -m demo_corpus -o Demo [--train-speakers 48] [--test-speakers 16] [--utterances 24] [-mw 2] [--seed 0]

writes

    Demo/VCTK/wav48/p225/p225_001.wav          training speakers, VCTK 0.80 layout, 48 kHz 16-bit
    Demo/VCTK/txt/p225/p225_001.txt            their sentences
    Demo/VC1_Test/wav/id10270/<video>/00001.wav  held-out speakers, VoxCeleb1 test layout, 16 kHz 16-bit
    Demo/VC1_Test/trials.txt                   '1 id10270/<video>/00001.wav id10270/<video>/00004.wav' per line
    Demo/speakers.tsv                          each speaker's voice and settings

A voice is an eSpeak NG English accent (en, en-us, en-gb-scotland, ...) with a voice variant
(m3, f2, klatt, whisper, ...); a speaker is a voice plus its own base pitch, pitch range and rate.
Variants that sound alike are found acoustically (mean log-mel of a few probe sentences): near
copies are dropped, and the held-out speakers take whole families of similar variants that no
training speaker uses, so that the test is on voices the encoder has never heard. Every utterance
has its own sentence and its own small changes of rate, pitch, loudness, noise and channel colour;
the held-out speakers' "videos" each have a recording condition of their own, as in VoxCeleb.

The output depends only on the arguments (the seed included): files are written atomically and
existing ones are skipped, so an interrupted run resumes where it stopped and gives the same corpus.
"""
import argparse
import multiprocessing
import os
import sys
import time

from tqdm import tqdm

from ge2e_speaker import hyper_parameters
from ge2e_speaker.atomic_files import remove_temporaries, write_atomically
from demo_corpus import speech_synth
from demo_corpus.planning import VC1_RATE, VCTK_RATE, build_speakers, vc1_utterances, vctk_utterances
from demo_corpus.rendering import make_file
from demo_corpus.trials import build_trials
from demo_corpus.voices import (DUPLICATE_DISTANCE, NO_VARIANT, distinct_accents, english_accents, near_duplicates,
                                speaker_mel_means, survey_voices, voice_name)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def speakers_table(train: list, test: list) -> str:
    lines = ['speaker\tset\tvoice\taccent\tvariant\tpitch\tpitch_range\trate']
    for group, speakers in (('train', train), ('test', test)):
        lines += [f'{s.name}\t{group}\t{s.voice}\t{s.accent}\t{s.variant or NO_VARIANT}\t{s.pitch}\t{s.pitch_range}\t{s.rate}'
                  for s in speakers]
    return '\n'.join(lines) + '\n'


def parse_arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='python -m demo_corpus',
                                     description='Build a synthetic demo corpus (eSpeak NG voices) in the VCTK '
                                                 'and VoxCeleb1-test layouts.')
    parser.add_argument('-o', '--output', required=True, help='output folder')
    parser.add_argument('--train-speakers', type=int, default=48, help='training speakers, VCTK layout (default 48)')
    parser.add_argument('--test-speakers', type=int, default=16, help='held-out speakers, VoxCeleb1 layout (default 16)')
    parser.add_argument('--utterances', type=int, default=24, help='utterances per training speaker (default 24)')
    parser.add_argument('--test-utterances', type=int, default=12, help='utterances per held-out speaker (default 12)')
    parser.add_argument('--train-rate', type=int, default=VCTK_RATE,
                        help=f'sample rate of the training files (default {VCTK_RATE}, as VCTK; 16000 takes a third of '
                             'the disk, for large corpora: the patterns are computed at 16 kHz either way)')
    parser.add_argument('--videos', type=int, default=3, help='"videos" (recording sessions) per held-out speaker')
    parser.add_argument('--trials', type=int, default=30,
                        help='target trials per held-out speaker, and as many non-target ones (default 30)')
    parser.add_argument('--accents', help='comma-separated eSpeak NG languages (default: every English accent)')
    parser.add_argument('--variants', help=f"comma-separated eSpeak NG variants, '{NO_VARIANT}' for the language's own voice "
                                           '(default: every variant that sounds distinct)')
    parser.add_argument('--check', action='store_true',
                        help='afterwards, count near-duplicate speakers from the written files (mean log-mels)')
    parser.add_argument('-hp', '--hyper_parameters', default=os.path.join(ROOT, 'Hyper_Parameter.yaml'),
                        help='hyper-parameter YAML; its Sound section gives the mel recipe of the voice checks')
    parser.add_argument('-mw', '--max_workers', type=int, default=os.cpu_count(), help='worker processes (default: all cores)')
    parser.add_argument('--seed', type=int, default=0)
    arguments = parser.parse_args(argv)
    for name in ('train_speakers', 'test_speakers', 'utterances', 'test_utterances', 'train_rate', 'videos', 'trials',
                 'max_workers'):
        if getattr(arguments, name) < (0 if name in ('train_speakers', 'test_speakers') else 1):
            parser.error(f'--{name.replace("_", "-")} is too small: {getattr(arguments, name)}')
    if arguments.test_speakers == 1:
        parser.error('--test-speakers must be 0 or at least 2 (non-target trials need another speaker)')
    return arguments


def main(argv=None) -> int:
    arguments = parse_arguments(argv)
    try:
        build(arguments)
    except (speech_synth.SynthesisError, ValueError) as error:   # an unknown voice; too few voices for the speakers
        print(f'demo_corpus: error: {error}', file=sys.stderr)
        return 2
    return 0


def build(arguments: argparse.Namespace) -> None:
    """The whole corpus for parsed command-line arguments; prints where everything went."""
    started = time.time()
    root = arguments.output
    sound_hp = hyper_parameters.load_hyper_parameters(arguments.hyper_parameters).Sound
    accents = arguments.accents.split(',') if arguments.accents else english_accents()
    variants = ([('' if name == NO_VARIANT else name) for name in arguments.variants.split(',')] if arguments.variants
                else [''] + list(speech_synth.variants()))
    for accent in accents:
        speech_synth.check_voice(accent)
    for variant in variants:
        speech_synth.check_voice(voice_name('en', variant))
    os.makedirs(root, exist_ok=True)
    stale = remove_temporaries(root)
    if stale:
        print(f'Removed {stale} half-written files of an interrupted run.')

    with multiprocessing.Pool(arguments.max_workers) as pool:
        accents, same_accents = distinct_accents(accents)
        for accent, twin in same_accents.items():
            print(f'Accent {accent} left out: it sounds exactly like {twin}.')
        variants, dropped, families = survey_voices(variants, sound_hp, pool)
        for variant, reason in dropped.items():
            print(f'Variant {variant or NO_VARIANT} left out: {reason}.')
        print(f'{len(variants)} distinct variants in {len(set(families.values()))} families x {len(accents)} accents '
              f'= {len(variants) * len(accents)} voices available (voice survey: {time.time() - started:.0f} s).')
        train, test = build_speakers(variants, accents, arguments.train_speakers, arguments.test_speakers,
                                     arguments.seed, families)
        held_out = vc1_utterances(test, arguments.test_utterances, arguments.videos, arguments.seed)
        planned = vctk_utterances(train, arguments.utterances, arguments.seed, arguments.train_rate) + held_out
        todo = [utterance for utterance in planned if not os.path.exists(os.path.join(root, utterance.path))]
        if len(todo) < len(planned):
            print(f'{len(planned) - len(todo)} of {len(planned)} files already written: skipped.')
        for _ in tqdm(pool.imap_unordered(make_file, [(root, utterance) for utterance in todo], chunksize=4),
                      total=len(todo), desc='Utterances', unit='file', smoothing=0.05):
            pass
        seconds = time.time() - started
        write_atomically(os.path.join(root, 'speakers.tsv'), speakers_table(train, test).encode())
        if test:
            files_by_speaker = {}
            for utterance in held_out:
                files_by_speaker.setdefault(utterance.speaker.name, []).append(utterance.path[len('VC1_Test/wav/'):])
            trials = build_trials(files_by_speaker, arguments.trials, arguments.seed)
            write_atomically(os.path.join(root, 'VC1_Test', 'trials.txt'),
                       ''.join(f'{label} {enrolment} {test_file}\n' for label, enrolment, test_file in trials).encode())
        if arguments.check:
            close, spread, closest = near_duplicates(speaker_mel_means(root, planned, sound_hp, pool))
            print(f'Voice check: {len(close)} of {len(train + test) * (len(train + test) - 1) // 2} pairs of speakers '
                  f'have mean log-mels closer than {DUPLICATE_DISTANCE}'
                  + (': ' + ', '.join(f'{a}~{b} {d:.2f}' for a, b, d in close) if close else '')
                  + ''.join(f'; the closest pair is {a}~{b} at {d:.2f}' for a, b, d in closest)
                  + f'; an utterance lies {spread:.2f} from its own speaker\'s mean (median).')

    held_out_variants = {speaker.variant for speaker in test} - {speaker.variant for speaker in train}
    print(f'Training speakers: {len(train)} x {arguments.utterances} utterances at {arguments.train_rate} Hz in '
          f'{os.path.join(root, "VCTK")} (Pattern_Generate.py -vctk {os.path.join(root, "VCTK")})')
    if test:
        print(f'Held-out speakers: {len(test)} x {arguments.test_utterances} utterances at {VC1_RATE} Hz in '
              f'{os.path.join(root, "VC1_Test")} (Pattern_Generate.py -vc1t {os.path.join(root, "VC1_Test")}); '
              f'{sum(s.variant in held_out_variants for s in test)} of them with variants no training speaker uses')
        print(f'Trials: {len(trials)} ({sum(t[0] for t in trials)} target) in '
              f'{os.path.join(root, "VC1_Test", "trials.txt")}, paths relative to {os.path.join(root, "VC1_Test", "wav")}')
    print(f'Speakers and voices: {os.path.join(root, "speakers.tsv")}. '
          f'{len(todo)} files written in {seconds:.0f} s.')

