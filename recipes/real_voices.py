"""The example encoder for real voices: corpus from public recordings, patterns, fine-tuning.

    git clone https://github.com/jimbozhang/speechocean762 SOURCES/speechocean762   # and the others below
    python recipes/real_voices.py --sources SOURCES            # prepare, patterns, refine (resumes)
    python recipes/real_voices.py --sources SOURCES --stage prepare

Stages, each resumable (a rerun skips what is done):
  prepare   SOURCES -> Real_Voices/Corpus: speaker folders of joined word clips (one-second words
            are shorter than a training crop), Common Voice clips by speaker, Kaldi data dirs
            for speechocean762's train half, and the held-out speakers (Held_Out/ + trials.txt)
  patterns  Pattern_Generate.py -folder/-kaldi (training) and -foldert/-kaldit (held out)
  train     round 2: Train.py --init <round 1's encoder>, or -s <last> when checkpoints exist
  refine    round 3: round 2's encoder (Example_Results/Real_Voices_v2/S_4000.pkl) trained on with
            the recipe's settings less noise and babble, the one part that alone made the held-out
            EER worse (recipes/augmentation_ablation.py); Real_Voices/Refine/, resumes likewise
  evaluate  EER over all pairs of held-out files, t-SNE (--run refine|round2, --step N, default last;
            --resemblyzer: beside it)
  export    the slim checkpoint and its settings into the package's example encoder
            (ge2e_speaker/example_encoder/, which Example_Results/Checkpoint links to), its
            figure into Example_Results/Figures/ (--step N)

Held-out speakers are drawn per source with a fixed seed and never trained on. speechocean762's
test half, LibriSpeech/LibriTTS, RAVDESS, EmoDB and the Free Spoken Digit Dataset are not used.
"""
import argparse
import copy
import csv
import glob
import io
import os
import shutil
import subprocess
import sys
from collections import defaultdict

import librosa
import numpy as np
import soundfile
import yaml
from tqdm import tqdm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ge2e_speaker import audio  # noqa: E402
from ge2e_speaker.atomic_files import write_atomically  # noqa: E402
from ge2e_speaker.checkpoints import (HYPER_PARAMETER_KEY, hyper_parameters_of, list_checkpoints, load_checkpoint,  # noqa: E402
                                      save_checkpoint, save_hyper_parameters_beside)
from ge2e_speaker.embedding import EXAMPLE_CHECKPOINT  # noqa: E402
from ge2e_speaker.hyper_parameters import load_hyper_parameters, to_dict  # noqa: E402
from ge2e_speaker.metrics import equal_error_rate  # noqa: E402

HYPER_PARAMETERS = 'recipes/real_voices.yaml'
INIT_CHECKPOINT = 'Example_Results/Real_Voices_v1/S_1500.pkl'   # round 1's encoder
ROUND_2_CHECKPOINT = 'Example_Results/Real_Voices_v2/S_4000.pkl'  # round 2's, which refine starts from
REFINE_FOLDER = os.path.join('Real_Voices', 'Refine')
SAMPLE_RATE = 16000
JOIN_TOP_DB = 30          # trim of each word clip before joining
JOIN_GAP_SECONDS = 0.15   # silence between joined clips
SEED = 20261126

# name: (repository, speakers held out, word clips joined per utterance (0: clips as they are;
# -1: long recordings cut into SEGMENT_SECONDS pieces through a Kaldi segments file), the fewest
# utterances of a speaker that may be held out). The first six are round 1's: their held-out
# speakers are drawn as then (same seeds, same candidates), so both rounds score the same people.
SOURCES = {
    'speechocean762': ('jimbozhang/speechocean762', 16, 0, 6),
    'DSPSpeech-20': ('zhongyuchen/DSPSpeech-20', 6, 4, 6),
    'PICO-tinyML-benchmark': ('thegtagamer/PICO-tinyML-benchmark', 8, 3, 6),
    'arabic-speech-commands-dataset': ('abdulkaderghandoura/arabic-speech-commands-dataset', 5, 4, 6),
    'whisper': ('korliu/whisper', 8, 0, 6),
    'SR': ('yasaman999/SR', 5, 0, 6),
    'alphanumeric-audio-dataset': ('Sakshee5/alphanumeric-audio-dataset', 8, -1, 3),
    'YourTTS-VCTK': ('Edresson/YourTTS', 3, 0, 5),
    'YourTTS-MLS-PT': ('Edresson/YourTTS', 2, -1, 5),
    'audio-for-Twi-TTS': ('pryyyynz/audio-for-Twi-TTS', 2, 0, 5),
    'speechdataset': ('puri-gagan/speechdataset', 0, 0, 5),
}
FOLDERS = {'YourTTS-VCTK': 'YourTTS', 'YourTTS-MLS-PT': 'YourTTS'}   # source name -> its clone's folder
BRANCHES = {'Edresson/YourTTS': 'gh-pages'}                          # repositories not read at their default branch
EXTRA_WORDS = ('mini-audio-datasets', 'a-n-rose/mini-audio-datasets')  # more Speech Commands clips, merged by speaker hash
TAGS = {'speechocean762': 'SO762', 'DSPSpeech-20': 'DSP20', 'PICO-tinyML-benchmark': 'SPCMD',
        'arabic-speech-commands-dataset': 'ARCMD', 'whisper': 'CVEN', 'SR': 'CVFA', 'alphanumeric-audio-dataset': 'ANUM',
        'YourTTS-VCTK': 'VCTK', 'YourTTS-MLS-PT': 'MLSPT', 'audio-for-Twi-TTS': 'CVTW', 'speechdataset': 'CVEN2'}
VCTK_HELD_OUT_TAG = 'VCTKHO'   # -vctk's tag VCTK is the original's; the held-out part is a -foldert corpus
MIN_UTTERANCES = 5        # a speaker with fewer (after joining) is left out: Train.Batch.*.Pattern_per_Speaker
HELD_OUT_UTTERANCES = 20  # at most this many utterances of each held-out speaker (the trials grow with the square)
SEGMENT_SECONDS = 3.5     # pieces of long recordings (-1 above); a last piece under half of it joins the one before


def clone_command(name: str, target: str) -> str:
    repository = SOURCES[name][0]
    branch = f' -b {BRANCHES[repository]}' if repository in BRANCHES else ''
    return f'git clone{branch} https://github.com/{repository} {target}'


def speechocean_train(source: str) -> dict:
    """speaker -> [(utterance id, path)] of speechocean762's train half (train/wav.scp, utt2spk)."""
    paths = dict(line.split(None, 1) for line in open(os.path.join(source, 'train', 'wav.scp')) if line.strip())
    by_speaker = defaultdict(list)
    for line in open(os.path.join(source, 'train', 'utt2spk')):
        if line.strip():
            utterance, speaker = line.split()
            by_speaker[speaker].append((utterance, os.path.join(source, paths[utterance].strip())))
    return by_speaker


def speech_command_clips(folder: str, separator: str) -> dict:
    """speaker -> clip paths of a Speech Commands layout <word>/<speaker><separator><n>.wav."""
    by_speaker = defaultdict(list)
    for path in sorted(glob.glob(os.path.join(folder, '*', '*.wav'))):
        word, name = path.split(os.sep)[-2:]
        if word.startswith('_') or separator not in name:
            continue
        by_speaker[name.split(separator)[0]].append(path)
    return by_speaker


def common_voice_clips(folder: str) -> dict:
    """speaker (client_id, first 16 characters) -> clip paths, from the .tsv files beside clips/."""
    clips = set(os.listdir(os.path.join(folder, 'clips')))
    speaker_of = {}
    for table in sorted(glob.glob(os.path.join(folder, '*.tsv'))):
        with open(table, encoding='utf-8', newline='') as stream:
            for row in csv.DictReader(stream, delimiter='\t', quoting=csv.QUOTE_NONE):
                if row.get('path') in clips and row.get('client_id'):
                    speaker_of[row['path']] = row['client_id'][:16]
    by_speaker = defaultdict(list)
    for clip, speaker in sorted(speaker_of.items()):
        by_speaker[speaker].append(os.path.join(folder, 'clips', clip))
    return by_speaker


def wavs_by_folder(pattern: str) -> dict:
    """speaker (the file's folder) -> its .wav files, for a glob pattern ending in <speaker>/*.wav."""
    by_speaker = defaultdict(list)
    for path in sorted(glob.glob(pattern)):
        by_speaker[os.path.basename(os.path.dirname(path))].append(path)
    return by_speaker


def alphanumeric_recordings(source: str) -> dict:
    """speaker (the response id R_<id>, the same in Names/, Numbers/ and Addresses/) -> recordings."""
    by_speaker = defaultdict(list)
    for path in sorted(glob.glob(os.path.join(source, 'audio_data', '*', 'R_*.wav'))):
        by_speaker[os.path.splitext(os.path.basename(path))[0]].append(path)
    return by_speaker


def source_clips(name: str, source: str) -> dict:
    """speaker -> clip paths (or (utterance, path) for speechocean762) of one source."""
    if name == 'speechocean762':
        return speechocean_train(source)
    if name == 'DSPSpeech-20':
        return wavs_by_folder(os.path.join(source, 'speech_data', '*', '*.wav'))
    if name == 'PICO-tinyML-benchmark':
        return speech_command_clips(os.path.join(source, 'MLTK_keyworkSpotting', 'dataset'), '_nohash_')
    if name == 'arabic-speech-commands-dataset':
        return speech_command_clips(os.path.join(source, 'dataset'), '_NO_')
    if name == 'whisper':
        return common_voice_clips(os.path.join(source, 'dataset'))
    if name == 'alphanumeric-audio-dataset':
        return alphanumeric_recordings(source)
    if name == 'YourTTS-VCTK':   # real VCTK recordings only: the rest of audios_demo is synthesised or reserved
        return wavs_by_folder(os.path.join(source, 'audios_demo', 'GT', 'VCTK', 'p*', '*.wav'))
    if name == 'YourTTS-MLS-PT':
        return wavs_by_folder(os.path.join(source, 'audios_demo', 'GT', 'MLS-PT', '*', '*.wav'))
    return common_voice_clips(source)


def segments_of(paths: list) -> list:
    """(recording path, start, end) pieces of SEGMENT_SECONDS of long recordings, in seconds."""
    pieces = []
    for path in paths:
        duration = soundfile.info(path).duration
        count = max(1, round(duration / SEGMENT_SECONDS))
        if duration - (count - 1) * SEGMENT_SECONDS < SEGMENT_SECONDS / 2 and count > 1:
            count -= 1
        bounds = [index * SEGMENT_SECONDS for index in range(count)] + [duration]
        pieces += [(path, round(start, 3), round(end, 3)) for start, end in zip(bounds, bounds[1:])]
    return pieces


def joined_clip(paths: list) -> np.ndarray:
    """Clips of one speaker, each trimmed of silence, joined with short gaps -> 16 kHz samples."""
    gap = np.zeros(int(JOIN_GAP_SECONDS * SAMPLE_RATE), dtype=np.float32)
    pieces = []
    for path in paths:
        samples = audio.load_audio(path, SAMPLE_RATE)
        trimmed, _ = librosa.effects.trim(samples, top_db=JOIN_TOP_DB)
        pieces += [trimmed, gap]
    return np.concatenate(pieces[:-1])


def write_wav(path: str, samples: np.ndarray) -> None:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, subtype='PCM_16', format='WAV')
    write_atomically(path, buffer.getvalue())


def utterances_of(clips: list, join: int, rng: np.random.Generator) -> list:
    """Groups of `join` clips (shuffled with the recipe's seed), or single clips when join is 0."""
    if not join:
        return [[clip] for clip in clips]
    order = rng.permutation(len(clips))
    return [[clips[index] for index in order[start:start + join]] for start in range(0, len(order) - join + 1, join)]


def link(target: str, path: str) -> None:
    if not os.path.lexists(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(os.path.abspath(path), target)


def extra_words(sources: str) -> dict:
    """speaker hash -> clips of mini-audio-datasets' speech_commands/ (the same people as
    Speech Commands': their clips join those of the same hash)."""
    folder = os.path.join(sources, EXTRA_WORDS[0])
    if not os.path.isdir(folder):
        raise SystemExit(f'{folder}: missing; git clone https://github.com/{EXTRA_WORDS[1]} {folder}')
    return speech_command_clips(os.path.join(folder, 'speech_commands'), '_nohash_')


def prepare(sources: str, corpus: str) -> None:
    """Speaker folders (and Kaldi dirs) for training and for the held-out speakers, plus trials.txt."""
    held_out_files = []
    for name, (_, held_out, join, candidate_minimum) in SOURCES.items():
        source = os.path.join(sources, FOLDERS.get(name, name))
        if not os.path.isdir(source):
            raise SystemExit(f'{source}: missing; {clone_command(name, source)}')
        rng = np.random.default_rng([SEED, len(name)])
        clips = source_clips(name, source)
        candidates = sorted(speaker for speaker, files in clips.items()
                            if len(files) // max(join, 1) >= candidate_minimum)
        chosen = set(rng.choice(candidates, size=held_out, replace=False).tolist())
        tag = TAGS[name]
        if name == 'speechocean762':
            print(f'{name}: {len(candidates)} speakers, {held_out} held out')
            write_kaldi_dirs(corpus, tag, clips, candidates, chosen, held_out_files)
            continue
        # Groups drawn in round 1's order (candidates first, sorted), so its files come out again.
        order = candidates + sorted(set(clips) - set(candidates))
        groups = {speaker: utterances_of(clips[speaker], max(join, 0), rng) for speaker in order}
        if name == 'PICO-tinyML-benchmark':   # more clips of the same people, after round 1's groups
            for speaker, files in extra_words(sources).items():
                if speaker not in chosen:
                    groups[speaker] = groups.get(speaker, []) + utterances_of(files, join, rng)
        if join == -1:   # training speakers' long recordings in pieces; held-out ones whole
            groups = {speaker: utterances if speaker in chosen else [[piece] for piece in segments_of(sum(utterances, []))]
                      for speaker, utterances in groups.items()}
        training = sorted(speaker for speaker, utterances in groups.items()
                          if speaker not in chosen and len(utterances) >= MIN_UTTERANCES)
        print(f'{name}: {len(training)} training speakers with {MIN_UTTERANCES}+ utterances, {held_out} held out '
              f'({len(groups) - len(training) - held_out} with fewer left out)')
        for speaker in sorted(chosen):
            for index, group in enumerate(groups[speaker][:HELD_OUT_UTTERANCES]):
                target = os.path.join(corpus, 'Held_Out', tag, speaker, utterance_name(index, group, join))
                write_utterance(target, group, join)
                held_out_files.append(os.path.relpath(target, os.path.join(corpus, 'Held_Out')))
        if join == -1:
            write_segments(os.path.join(corpus, 'Kaldi', 'Train', tag), {speaker: groups[speaker] for speaker in training})
            continue
        for speaker in tqdm(training, desc=tag, unit='speaker'):
            for index, group in enumerate(groups[speaker]):
                write_utterance(os.path.join(corpus, 'Train', tag, speaker, utterance_name(index, group, join)), group, join)
    write_trials(os.path.join(corpus, 'Held_Out'), held_out_files)


def utterance_name(index: int, group: list, join: int) -> str:
    """A joined utterance's file name (0000.wav ...), or a recording's own; a long recording
    (join -1) has its folder's name in front, as alphanumeric-audio-dataset's Names/R_x.wav
    and Numbers/R_x.wav share a name."""
    if join > 0:
        return f'{index:04d}.wav'
    name = os.path.basename(group[0])
    return f'{os.path.basename(os.path.dirname(group[0]))}_{name}' if join == -1 else name


def write_utterance(target: str, group: list, join: int) -> None:
    """One utterance: the joined clips of group (join > 0), or a link to its one recording."""
    if join > 0:
        if not os.path.exists(target):
            write_wav(target, joined_clip(group))
    else:
        link(target, group[0])


def write_segments(data_dir: str, pieces: dict) -> None:
    """A Kaldi data dir (wav.scp, segments, utt2spk) of speaker -> [[(path, start, end)]]."""
    recordings, segments, speakers = {}, [], []
    for speaker, utterances in sorted(pieces.items()):
        for index, ((path, start, end),) in enumerate(utterances):
            recording = recordings.setdefault(path, f'{speaker}-{len(recordings):05d}')
            utterance = f'{speaker}-{index:04d}'
            segments.append(f'{utterance} {recording} {start} {end}\n')
            speakers.append(f'{utterance} {speaker}\n')
    os.makedirs(data_dir, exist_ok=True)
    write_atomically(os.path.join(data_dir, 'wav.scp'),
                     ''.join(f'{recording} {os.path.abspath(path)}\n' for path, recording in recordings.items()).encode())
    write_atomically(os.path.join(data_dir, 'segments'), ''.join(segments).encode())
    write_atomically(os.path.join(data_dir, 'utt2spk'), ''.join(speakers).encode())


def write_kaldi_dirs(corpus: str, tag: str, utterances: dict, usable: list, chosen: set, held_out_files: list) -> None:
    """speechocean762's train half as two Kaldi data dirs (training, held out); the held-out
    recordings are also linked into Held_Out/<tag>/<speaker>/ for the trial list."""
    for part, speakers in (('Train', [s for s in usable if s not in chosen]), ('Held_Out', sorted(chosen))):
        data_dir = os.path.join(corpus, 'Kaldi', part, tag)
        os.makedirs(data_dir, exist_ok=True)
        rows = [(utterance, path, speaker) for speaker in speakers
                for utterance, path in utterances[speaker][:HELD_OUT_UTTERANCES if part == 'Held_Out' else None]]
        write_atomically(os.path.join(data_dir, 'wav.scp'),
                         ''.join(f'{u} {os.path.abspath(p)}\n' for u, p, _ in rows).encode())
        write_atomically(os.path.join(data_dir, 'utt2spk'), ''.join(f'{u} {s}\n' for u, _, s in rows).encode())
        if part == 'Held_Out':
            for utterance, path, speaker in rows:
                link = os.path.join(corpus, 'Held_Out', tag, speaker, f'{utterance}.wav')
                if not os.path.exists(link):
                    os.makedirs(os.path.dirname(link), exist_ok=True)
                    os.symlink(os.path.abspath(path), link)
                held_out_files.append(os.path.relpath(link, os.path.join(corpus, 'Held_Out')))


def write_trials(held_out: str, files: list) -> None:
    """Every pair of held-out files: trials.txt ('target path path', 1 same speaker, 0 not), and
    labels.txt ('path TAG/speaker', Inference.py's list input) for the t-SNE figure."""
    files = sorted(files)
    speakers = [os.path.dirname(file) for file in files]
    lines = [f'{int(speakers[i] == speakers[j])} {files[i]} {files[j]}'
             for i in range(len(files)) for j in range(i + 1, len(files))]
    write_atomically(os.path.join(held_out, 'trials.txt'), ('\n'.join(lines) + '\n').encode())
    write_atomically(os.path.join(held_out, 'labels.txt'),
                     ''.join(f'{os.path.join(held_out, file)} {speaker}\n' for file, speaker in zip(files, speakers)).encode())
    print(f'{held_out}/trials.txt: {len(lines)} trials over {len(files)} files of '
          f'{len(set(speakers))} held-out speakers')


def run(command: list) -> None:
    print('+', ' '.join(command), flush=True)
    status = subprocess.run([sys.executable] + command, cwd=ROOT).returncode
    if status == 130:   # Ctrl-C or SIGTERM: Train.py saved a checkpoint
        raise SystemExit(f'{command[0]} was stopped; run the same stage again to go on from where it stopped')
    if status:
        raise SystemExit(f'{command[0]} stopped with exit status {status}; fix what it said and run the stage again')


def make_patterns(corpus: str, workers: int, hyper_parameters: str = HYPER_PARAMETERS) -> None:
    command = ['Pattern_Generate.py', '-hp', hyper_parameters, '-mw', str(workers), '--pack']
    for part, flags in (('Train', ('-folder', '-kaldi')), ('Held_Out', ('-foldert', '-kaldit'))):
        for tag in sorted(TAGS.values()):
            folder = os.path.join(corpus, part, tag)
            kaldi = os.path.join(corpus, 'Kaldi', part, tag)
            if os.path.isdir(kaldi):
                command += [flags[1], f'{tag}={kaldi}']
            elif os.path.isdir(folder) and tag == 'VCTK':   # real VCTK through the original's -vctk reader
                command += ['-vctk', folder] if part == 'Train' else [flags[0], f'{VCTK_HELD_OUT_TAG}={folder}']
            elif os.path.isdir(folder):
                command += [flags[0], f'{tag}={folder}']
    run(command)


def train() -> None:
    steps = list_checkpoints(os.path.join(ROOT, checkpoint_folder('round2')))
    run(['Train.py', '-hp', HYPER_PARAMETERS] + (['-s', str(steps[-1])] if steps else ['--init', INIT_CHECKPOINT]))


def refine_settings(recipe: dict) -> dict:
    """Round 3's settings: the recipe's, less noise and babble, at round 2's learning rate of its
    step 4000 (5e-4 halved once), for 6,000 steps, in Real_Voices/Refine/."""
    settings = copy.deepcopy(recipe)
    settings['Augmentation']['Noise']['Probability'] = 0.0
    settings['Augmentation']['Babble']['Probability'] = 0.0
    settings['Train']['Learning_Rate']['Initial'] = recipe['Train']['Learning_Rate']['Initial'] / 2
    settings['Train']['Max_Step'] = 6000
    settings['Checkpoint_Path'] = os.path.join(REFINE_FOLDER, 'Checkpoint')
    settings['Log_Path'] = os.path.join(REFINE_FOLDER, 'Log')
    return settings


def refine_settings_file() -> str:
    """Real_Voices/Refine/settings.yaml, written from the recipe (relative to the repository)."""
    with open(os.path.join(ROOT, HYPER_PARAMETERS), encoding='utf-8') as stream:
        settings = refine_settings(yaml.safe_load(stream))
    path = os.path.join(REFINE_FOLDER, 'settings.yaml')
    write_atomically(os.path.join(ROOT, path), yaml.safe_dump(settings, sort_keys=False).encode('utf-8'))
    return path


def refine(init: str) -> None:
    settings = refine_settings_file()
    steps = list_checkpoints(os.path.join(ROOT, checkpoint_folder('refine')))
    run(['Train.py', '-hp', settings] + (['-s', str(steps[-1])] if steps else ['--init', init]))


def checkpoint_folder(run_name: str) -> str:
    """A run's Checkpoint_Path (relative to the repository): round2, the recipe's; refine, round 3's."""
    if run_name == 'refine':
        return os.path.join(REFINE_FOLDER, 'Checkpoint')
    return load_hyper_parameters(os.path.join(ROOT, HYPER_PARAMETERS)).Checkpoint_Path


def inference_folder(run_name: str, step: int) -> str:
    """Where evaluate writes a checkpoint's held-out scores: beside the run's Checkpoint folder."""
    return os.path.join(ROOT, os.path.dirname(checkpoint_folder(run_name)), 'Inference', f'S_{step}')


def evaluate(corpus: str, run_name: str, step: int, resemblyzer: bool) -> None:
    """EER over every pair of held-out files and the t-SNE figure of the held-out speakers
    (Inference.py --trials); with resemblyzer, Resemblyzer's EER on the same trials beside it."""
    checkpoint = os.path.join(checkpoint_folder(run_name), f'S_{step}.pkl')
    held_out = os.path.join(corpus, 'Held_Out')
    trials = os.path.join(held_out, 'trials.txt')
    run(['Inference.py', '-c', checkpoint, '-i', os.path.join(held_out, 'labels.txt'), '--trials', trials,
         '--root', held_out, '-o', inference_folder(run_name, step)])
    print_source_eers(os.path.join(inference_folder(run_name, step), 'scores.txt'))
    if resemblyzer:
        run(['benchmarks/compare_resemblyzer.py', '-c', checkpoint, '--trials', trials, '--root', held_out, '--by-folder'])


def print_source_eers(scores_file: str) -> None:
    """The EER of all trials and of the trials within each source (both files in one TAG/ folder),
    from Inference.py's scores.txt ('target path path score' per line)."""
    by_source = defaultdict(lambda: ([], []))
    with open(scores_file, encoding='utf-8') as stream:
        for line in stream:
            target, first, second, score = line.split()
            for source in {'all', first.split('/')[0]} if first.split('/')[0] == second.split('/')[0] else {'all'}:
                by_source[source][0].append(float(score))
                by_source[source][1].append(int(target))
    print('EER by source: ' + ', '.join(f'{source} {100 * equal_error_rate(np.array(scores), targets):.2f} %'
                                        for source, (scores, targets) in sorted(by_source.items())))


# Inference.py's figures of an evaluation -> the kind in Example_Results/Figures/S{step}_real_held_out_{kind}.png
FIGURES = {'tsne.png': 'tsne', 'det.png': 'det', 'score_histogram.png': 'scores'}


def export(run_name: str, step: int, target: str = os.path.dirname(EXAMPLE_CHECKPOINT),
           figures: str = os.path.join(ROOT, 'Example_Results', 'Figures')) -> None:
    """The checkpoint's encoder, w, b and settings (no optimiser state) into target (the package's
    example encoder folder, emptied first), with the Hyper_Parameter.yaml beside it, and the held-out
    t-SNE, DET curve and score histograms of its evaluation into figures."""
    checkpoint = os.path.join(ROOT, checkpoint_folder(run_name), f'S_{step}.pkl')
    state = load_checkpoint(checkpoint)
    settings, _ = hyper_parameters_of(checkpoint, state)
    evaluation = inference_folder(run_name, step)
    if not os.path.isfile(os.path.join(evaluation, 'tsne.png')):
        sys.exit(f'{evaluation} has no tsne.png: run --stage evaluate --run {run_name} --step {step} first')
    for name in os.listdir(target) if os.path.isdir(target) else []:
        os.remove(os.path.join(target, name))
    os.makedirs(target, exist_ok=True)
    save_checkpoint({'Model': state['Model'], 'Steps': state['Steps'], 'Loss': state['Loss'],
                     HYPER_PARAMETER_KEY: to_dict(settings)}, os.path.join(target, f'S_{step}.pkl'))
    save_hyper_parameters_beside(settings, target)
    os.makedirs(figures, exist_ok=True)
    written = []
    for source, kind in FIGURES.items():
        if os.path.isfile(os.path.join(evaluation, source)):
            written.append(os.path.join(figures, f'S{step}_real_held_out_{kind}.png'))
            shutil.copyfile(os.path.join(evaluation, source), written[-1])
    print(f'{target}/S_{step}.pkl ({os.path.getsize(os.path.join(target, f"S_{step}.pkl")) / 1e6:.1f} MB), '
          f'its Hyper_Parameter.yaml and {", ".join(written)} written')
    if os.path.basename(EXAMPLE_CHECKPOINT) != f'S_{step}.pkl':
        print(f'load_encoder() ships {os.path.basename(EXAMPLE_CHECKPOINT)}: set EXAMPLE_CHECKPOINT in '
              f'ge2e_speaker/embedding.py to S_{step}.pkl')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sources', required=True, help='folder holding the cloned source repositories')
    parser.add_argument('--corpus', default=os.path.join(ROOT, 'Real_Voices', 'Corpus'), help='prepared corpus folder')
    parser.add_argument('--stage', choices=('all', 'prepare', 'patterns', 'train', 'refine', 'evaluate', 'export'),
                        default='all', help='all: prepare, patterns, refine (train is round 2, from round 1); '
                        'evaluate and export take --run and --step')
    parser.add_argument('--init', default=ROUND_2_CHECKPOINT, help='refine: the checkpoint it starts from (default '
                        f'{ROUND_2_CHECKPOINT}; Real_Voices/Checkpoint/S_4000.pkl chains on your own round 2)')
    parser.add_argument('--run', choices=('refine', 'round2'), default='refine',
                        help='evaluate, export: the checkpoints of round 3 (refine, the default) or of round 2 (train)')
    parser.add_argument('--step', type=int, help='the checkpoint to evaluate or export (default: the last)')
    parser.add_argument('--resemblyzer', action='store_true', help='evaluate: score Resemblyzer on the same trials too')
    parser.add_argument('-mw', '--max_workers', type=int, default=os.cpu_count())
    args = parser.parse_args()
    if args.stage in ('evaluate', 'export'):
        steps = list_checkpoints(os.path.join(ROOT, checkpoint_folder(args.run)))
        step = args.step if args.step is not None else (steps or [None])[-1]
        if step not in steps:
            raise SystemExit(f'no checkpoint S_{step}.pkl in {checkpoint_folder(args.run)} (there: {steps}); '
                             f'train it first, or pass --run {"round2" if args.run == "refine" else "refine"}')
        if args.stage == 'evaluate':
            evaluate(args.corpus, args.run, step, args.resemblyzer)
        else:
            export(args.run, step)
        return
    if args.stage in ('all', 'prepare'):
        prepare(args.sources, args.corpus)
    if args.stage in ('all', 'patterns'):
        make_patterns(args.corpus, args.max_workers)
    if args.stage == 'train':
        train()
    if args.stage in ('all', 'refine'):
        refine(args.init)


if __name__ == '__main__':
    main()
