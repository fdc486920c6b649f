"""The example encoder for real voices: corpus from public recordings, patterns, fine-tuning.

    git clone https://github.com/jimbozhang/speechocean762 SOURCES/speechocean762   # and the others below
    python recipes/real_voices.py --sources SOURCES            # prepare, patterns, train (resumes)
    python recipes/real_voices.py --sources SOURCES --stage prepare

Stages, each resumable (a rerun skips what is done):
  prepare   SOURCES -> Real_Voices/Corpus: speaker folders of joined word clips (one-second words
            are shorter than a training crop), Common Voice clips by speaker, Kaldi data dirs
            for speechocean762's train half, and the held-out speakers (Held_Out/ + trials.txt)
  patterns  Pattern_Generate.py -folder/-kaldi (training) and -foldert/-kaldit (held out)
  train     Train.py --init <the synthetic example checkpoint>, or -s <last> when checkpoints exist
  evaluate  EER over all pairs of held-out files, t-SNE (--step N, default last; --resemblyzer: beside it)
  export    the slim checkpoint and its settings into the package's example encoder
            (ge2e_speaker/example_encoder/, which Example_Results/Checkpoint links to), its
            figure into Example_Results/Figures/ (--step N)

Held-out speakers are drawn per source with a fixed seed and never trained on. speechocean762's
test half, LibriSpeech/LibriTTS, RAVDESS, EmoDB and the Free Spoken Digit Dataset are not used.
"""
import argparse
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
from tqdm import tqdm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ge2e_speaker import audio  # noqa: E402
from ge2e_speaker.atomic_files import write_atomically  # noqa: E402
from ge2e_speaker.checkpoints import (HYPER_PARAMETER_KEY, hyper_parameters_of, list_checkpoints, load_checkpoint,  # noqa: E402
                                      save_checkpoint, save_hyper_parameters_beside)
from ge2e_speaker.embedding import EXAMPLE_CHECKPOINT  # noqa: E402
from ge2e_speaker.hyper_parameters import load_hyper_parameters, to_dict  # noqa: E402

HYPER_PARAMETERS = 'recipes/real_voices.yaml'
INIT_CHECKPOINT = 'Example_Results/Synthetic/Checkpoint/S_2500.pkl'
SAMPLE_RATE = 16000
JOIN_TOP_DB = 30          # trim of each word clip before joining
JOIN_GAP_SECONDS = 0.15   # silence between joined clips
SEED = 20261126

# name: (repository, speakers held out, word clips joined per utterance (0: clips as they are))
SOURCES = {
    'speechocean762': ('jimbozhang/speechocean762', 16, 0),
    'DSPSpeech-20': ('zhongyuchen/DSPSpeech-20', 6, 4),
    'PICO-tinyML-benchmark': ('thegtagamer/PICO-tinyML-benchmark', 8, 3),
    'arabic-speech-commands-dataset': ('abdulkaderghandoura/arabic-speech-commands-dataset', 5, 4),
    'whisper': ('korliu/whisper', 8, 0),
    'SR': ('yasaman999/SR', 5, 0),
}
TAGS = {'speechocean762': 'SO762', 'DSPSpeech-20': 'DSP20', 'PICO-tinyML-benchmark': 'SPCMD',
        'arabic-speech-commands-dataset': 'ARCMD', 'whisper': 'CVEN', 'SR': 'CVFA'}
MIN_UTTERANCES = 6        # a speaker with fewer (after joining) is left out: Train.Batch.*.Pattern_per_Speaker
HELD_OUT_UTTERANCES = 20  # at most this many utterances of each held-out speaker (the trials grow with the square)


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


def source_clips(name: str, source: str) -> dict:
    """speaker -> clip paths (or (utterance, path) for speechocean762) of one source."""
    if name == 'speechocean762':
        return speechocean_train(source)
    if name == 'DSPSpeech-20':
        return {os.path.basename(folder): sorted(glob.glob(os.path.join(folder, '*.wav')))
                for folder in sorted(glob.glob(os.path.join(source, 'speech_data', '*')))}
    if name == 'PICO-tinyML-benchmark':
        return speech_command_clips(os.path.join(source, 'MLTK_keyworkSpotting', 'dataset'), '_nohash_')
    if name == 'arabic-speech-commands-dataset':
        return speech_command_clips(os.path.join(source, 'dataset'), '_NO_')
    if name == 'whisper':
        return common_voice_clips(os.path.join(source, 'dataset'))
    return common_voice_clips(source)


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


def prepare(sources: str, corpus: str) -> None:
    """Speaker folders (and Kaldi dirs) for training and for the held-out speakers, plus trials.txt."""
    held_out_files = []
    for name, (_, held_out, join) in SOURCES.items():
        source = os.path.join(sources, name)
        if not os.path.isdir(source):
            raise SystemExit(f'{source}: missing; git clone https://github.com/{SOURCES[name][0]} {source}')
        rng = np.random.default_rng([SEED, len(name)])
        clips = source_clips(name, source)
        usable = sorted(speaker for speaker, files in clips.items() if len(files) // max(join, 1) >= MIN_UTTERANCES)
        chosen = set(rng.choice(usable, size=held_out, replace=False).tolist())
        tag = TAGS[name]
        print(f'{name}: {len(usable)} speakers with {MIN_UTTERANCES}+ utterances ({len(clips) - len(usable)} with '
              f'fewer left out), {held_out} held out')
        if name == 'speechocean762':
            write_kaldi_dirs(corpus, tag, clips, usable, chosen, held_out_files)
            continue
        for speaker in tqdm(usable, desc=tag, unit='speaker'):
            folder = os.path.join(corpus, 'Held_Out' if speaker in chosen else 'Train', tag, speaker)
            groups = utterances_of(clips[speaker], join, rng)
            for index, group in enumerate(groups[:HELD_OUT_UTTERANCES] if speaker in chosen else groups):
                extension = '.wav' if join else os.path.splitext(group[0])[1]
                target = os.path.join(folder, f'{index:04d}{extension}' if join else os.path.basename(group[0]))
                if not os.path.exists(target):
                    if join:
                        write_wav(target, joined_clip(group))
                    else:
                        os.makedirs(folder, exist_ok=True)
                        os.symlink(os.path.abspath(group[0]), target)
                if speaker in chosen:
                    held_out_files.append(os.path.relpath(target, os.path.join(corpus, 'Held_Out')))
    write_trials(os.path.join(corpus, 'Held_Out'), held_out_files)


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


def make_patterns(corpus: str, workers: int) -> None:
    command = ['Pattern_Generate.py', '-hp', HYPER_PARAMETERS, '-mw', str(workers)]
    for part, flags in (('Train', ('-folder', '-kaldi')), ('Held_Out', ('-foldert', '-kaldit'))):
        for tag in sorted(TAGS.values()):
            folder = os.path.join(corpus, part, tag)
            kaldi = os.path.join(corpus, 'Kaldi', part, tag)
            if os.path.isdir(kaldi):
                command += [flags[1], f'{tag}={kaldi}']
            elif os.path.isdir(folder):
                command += [flags[0], f'{tag}={folder}']
    run(command)


def train() -> None:
    steps = list_checkpoints(os.path.join(ROOT, checkpoint_folder()))
    run(['Train.py', '-hp', HYPER_PARAMETERS] + (['-s', str(steps[-1])] if steps else ['--init', INIT_CHECKPOINT]))


def checkpoint_folder() -> str:
    """The recipe's Checkpoint_Path (relative to the repository), from its checked hyper-parameters."""
    return load_hyper_parameters(os.path.join(ROOT, HYPER_PARAMETERS)).Checkpoint_Path


def evaluate(corpus: str, step: int, resemblyzer: bool) -> None:
    """EER over every pair of held-out files and the t-SNE figure of the held-out speakers
    (Inference.py --trials); with resemblyzer, Resemblyzer's EER on the same trials beside it."""
    checkpoint = os.path.join(checkpoint_folder(), f'S_{step}.pkl')
    held_out = os.path.join(corpus, 'Held_Out')
    trials = os.path.join(held_out, 'trials.txt')
    run(['Inference.py', '-c', checkpoint, '-i', os.path.join(held_out, 'labels.txt'), '--trials', trials,
         '--root', held_out, '-o', os.path.join(ROOT, 'Real_Voices', 'Inference', f'S_{step}')])
    if resemblyzer:
        run(['benchmarks/compare_resemblyzer.py', '-c', checkpoint, '--trials', trials, '--root', held_out, '--by-folder'])


def export(step: int) -> None:
    """The checkpoint's encoder, w, b and settings (no optimiser state) into the package's example
    encoder folder, with the Hyper_Parameter.yaml beside it, and the held-out t-SNE."""
    run_folder = os.path.join(ROOT, checkpoint_folder())
    state = load_checkpoint(os.path.join(run_folder, f'S_{step}.pkl'))
    settings, _ = hyper_parameters_of(os.path.join(run_folder, f'S_{step}.pkl'), state)
    target = os.path.dirname(EXAMPLE_CHECKPOINT)
    for name in os.listdir(target) if os.path.isdir(target) else []:
        os.remove(os.path.join(target, name))
    save_checkpoint({'Model': state['Model'], 'Steps': state['Steps'], 'Loss': state['Loss'],
                     HYPER_PARAMETER_KEY: to_dict(settings)}, os.path.join(target, f'S_{step}.pkl'))
    save_hyper_parameters_beside(settings, target)
    figures = os.path.join(ROOT, 'Example_Results', 'Figures')
    os.makedirs(figures, exist_ok=True)
    shutil.copyfile(os.path.join(ROOT, 'Real_Voices', 'Inference', f'S_{step}', 'tsne.png'),
                    os.path.join(figures, f'S{step}_real_held_out_tsne.png'))
    print(f'{target}/S_{step}.pkl ({os.path.getsize(os.path.join(target, f"S_{step}.pkl")) / 1e6:.1f} MB), '
          f'its Hyper_Parameter.yaml and {figures}/S{step}_real_held_out_tsne.png written')
    if os.path.basename(EXAMPLE_CHECKPOINT) != f'S_{step}.pkl':
        print(f'load_encoder() ships {os.path.basename(EXAMPLE_CHECKPOINT)}: set EXAMPLE_CHECKPOINT in '
              f'ge2e_speaker/embedding.py to S_{step}.pkl')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sources', required=True, help='folder holding the cloned source repositories')
    parser.add_argument('--corpus', default=os.path.join(ROOT, 'Real_Voices', 'Corpus'), help='prepared corpus folder')
    parser.add_argument('--stage', choices=('all', 'prepare', 'patterns', 'train', 'evaluate', 'export'), default='all',
                        help='all: prepare, patterns, train; evaluate and export take --step')
    parser.add_argument('--step', type=int, help='the checkpoint to evaluate or export (default: the last)')
    parser.add_argument('--resemblyzer', action='store_true', help='evaluate: score Resemblyzer on the same trials too')
    parser.add_argument('-mw', '--max_workers', type=int, default=os.cpu_count())
    args = parser.parse_args()
    if args.stage in ('evaluate', 'export'):
        steps = list_checkpoints(os.path.join(ROOT, checkpoint_folder()))
        step = args.step if args.step is not None else (steps or [None])[-1]
        if step not in steps:
            raise SystemExit(f'no checkpoint S_{step}.pkl in {checkpoint_folder()} (there: {steps})')
        (evaluate(args.corpus, step, args.resemblyzer) if args.stage == 'evaluate' else export(step))
        return
    if args.stage in ('all', 'prepare'):
        prepare(args.sources, args.corpus)
    if args.stage in ('all', 'patterns'):
        make_patterns(args.corpus, args.max_workers)
    if args.stage in ('all', 'train'):
        train()


if __name__ == '__main__':
    main()
