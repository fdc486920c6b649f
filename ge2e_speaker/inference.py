"""Speaker embeddings from audio files: the command line.

    python Inference.py -c Results/Checkpoint/S_100000.pkl -i wav_folder -o Results/Inference
    python Inference.py -c S_100000.pkl --trials veri_test.txt --root vox1_test/wav -o Results/Verification

Outputs in OUT_DIR: embeddings.npy (float32 [utterances, 256], rows L2-normalised, in input
order), embeddings_index.tsv (path and label of each row), speaker_embeddings.pickle
({label: float32 [256]}), tsne.png, skipped.tsv (files that could not be embedded, with why);
with --trials: scores.txt, verification.json (EER and minDCF), det.png and score_histogram.png;
with --partials: partials.npy and partials.tsv; with --timeline: timeline.tsv and timeline.png
(timeline.py). --shard K/N writes a part of the -i pass into OUT/shards/K-of-N, and --merge
publishes the parts as one run (shards.py). The files of one run replace
those of an earlier run in OUT_DIR as a set (atomic_files.OutputSet): never a mix of two runs.

Inference.py at the top of the repository and the ge2e-inference command run main(). The work
is done by embedding.py (the Python API), verification.py, plots.py, export.py, inputs.py and
npy_writer.py; the names the API documents are importable from here too, and from Inference.py
(`from Inference import load_encoder`).
"""
import argparse
import json
import os
import sys
import time
from collections import Counter

import numpy as np
import torch
from tqdm import tqdm

from . import audio, cpu_defaults, score_norm, shards
from .atomic_files import OutputSet, folder_problem, space_note
from .checkpoints import CheckpointError, DeviceError, load_trained_encoder, select_device
from .embedding import PRECISIONS, SLICE_MODES, SpeakerEncoder, default_workers, load_encoder, window_length
from .embedding_set import EmbeddingSet
from .export import ExportError, export_encoder
from .hyper_parameters import HyperParameterError, to_dict
from .inputs import InputError, read_input
from .npy_writer import NpyRowWriter
from .score_norm import CohortError
from .shards import ShardError, parse_shard
from .timeline import TimelineError, write_timeline
from .plots import plot_verification
from .verification import (TrialListError, VerificationResult, evaluate_trials, read_trials, score_trials,
                           write_verification)

__all__ = ['SpeakerEncoder', 'load_encoder', 'VerificationResult', 'evaluate_trials', 'read_trials', 'score_trials',
           'main']   # the Python API of embedding.py and verification.py, importable from here as before

OUTPUT_FILES = ('embeddings.npy', 'embeddings_index.tsv', 'speaker_embeddings.pickle', 'tsne.png', 'skipped.tsv',
                'scores.txt', 'verification.json', 'det.png', 'score_histogram.png', 'partials.npy', 'partials.tsv',
                'timeline.tsv', 'timeline.png')          # one run's set: replaced whole


class OutputError(RuntimeError):
    """An output folder that cannot take the files; str is one line."""


USER_ERRORS = (CheckpointError, CohortError, DeviceError, ExportError, HyperParameterError, InputError, OutputError,
               ShardError, TimelineError, TrialListError)


def embed_inputs(encoder: SpeakerEncoder, paths: list, labels: list, out_dir: str, plot: bool, title: str,
                 keep_rows_of: set = frozenset(), speakers: bool = True) -> tuple[int, dict, dict, float]:
    """The -i pass: writes embedding_set.py's files in out_dir (without speaker_embeddings.pickle
    and tsne.png when speakers is False: a shard's).

    Returns (rows written, {path: reason} of skipped files, {absolute path: vector or reason} of
    the paths in keep_rows_of, seconds spent embedding).
    """
    output = EmbeddingSet(out_dir, encoder.embedding_size)
    kept = {}
    started = time.perf_counter()
    for index, vector, reason in encoder.stream_files(paths, progress=True):
        path = paths[index]
        if os.path.abspath(path) in keep_rows_of:
            kept[os.path.abspath(path)] = vector if reason is None else reason
        if reason is None:
            output.add(path, labels[index], vector)
        else:
            output.skip(path, reason)
    seconds = time.perf_counter() - started
    rows = output.close(plot, title) if speakers else output.close_rows()
    return rows, output.reasons, kept, seconds


def whole_number(minimum: int):
    """An argparse type: an int >= minimum, else one line saying so."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f'{text!r} is not a whole number >= {minimum}')
        return value
    return parse


def parse_arguments(argv=None):
    parser = argparse.ArgumentParser(
        description='Speaker embeddings, speaker vectors, t-SNE figure and verification scores from audio files.')
    parser.add_argument('-c', '--checkpoint', help="a checkpoint: this project's or the seed's S_<step>.pkl (all but --merge)")
    parser.add_argument('-i', '--input', help="a folder (recursive; label = first folder below it) or a list file ('path label' per line)")
    parser.add_argument('-o', '--output', default='Results/Inference', help='output folder (default Results/Inference)')
    parser.add_argument('-hp', '--hyper_parameters', help='hyper-parameter YAML (default: the settings the checkpoint carries, '
                                                          'else the YAML beside it, else ./Hyper_Parameter.yaml)')
    parser.add_argument('--slices', choices=SLICE_MODES, default='auto',
                        help="auto (default): the seed's 5 x 64 frames up to 192 frames, windows over the whole "
                             "utterance when longer; multi: the seed's 5 x 64 frames (a longer utterance's centre); "
                             "single: one centred window of the training length; full: windows over the whole utterance")
    parser.add_argument('--partials', action='store_true',
                        help='with -i: also embeddings over time, partials.npy and partials.tsv (start, end in seconds)')
    parser.add_argument('--timeline', metavar='RECORDING',
                        help='who speaks when: RECORDING against --speakers, timeline.tsv and timeline.png '
                             '(similarity over time per speaker)')
    parser.add_argument('--speakers', nargs='+', metavar='PATH',
                        help='with --timeline: reference speakers, each an audio file (named by its stem), a folder of one '
                             "speaker's files, or a folder of speaker folders")
    parser.add_argument('--shard', type=parse_shard, metavar='K/N',
                        help='with -i: embed only the K-th of N equal, consecutive parts of the input, into OUT/shards/K-of-N '
                             '(one machine each); then --merge')
    parser.add_argument('--merge', action='store_true',
                        help="publish the N shards in -o OUT as one run's files, after checking that all are there, "
                             'finished and of one run')
    parser.add_argument('--no-plot', action='store_true', help='skip the figures (tsne.png, det.png, score_histogram.png, timeline.png)')
    parser.add_argument('--trials', help="a VoxCeleb trial list ('1 id10270/x/00001.wav id10270/y/00008.wav' per line)")
    parser.add_argument('--root', default='', help='the folder the trial paths are relative to')
    parser.add_argument('--cohort', metavar='NPY', help='with --trials: AS-norm the scores with this cohort, embeddings of '
                                                        'other speakers (the embeddings.npy of an Inference.py -i run)')
    parser.add_argument('--cohort-top', type=whole_number(1), default=score_norm.COHORT_TOP,
                        help=f'AS-norm: the closest cohort embeddings to each side of a trial (default {score_norm.COHORT_TOP})')
    parser.add_argument('--batch', type=whole_number(1), default=64, help='utterances per encoder call (default 64)')
    parser.add_argument('--workers', type=whole_number(0), default=None,
                        help=f'audio decoding processes (default {default_workers()} here in float32: ge2e_speaker/cpu_defaults.py)')
    parser.add_argument('--threads', type=whole_number(1), default=None,
                        help='torch threads for the encoder (default: OMP_NUM_THREADS if set, else ge2e_speaker/cpu_defaults.py, '
                             'or cores - workers with --workers)')
    parser.add_argument('--precision', choices=tuple(PRECISIONS), default='float32',
                        help='bfloat16: a faster encoder on GPUs and CPUs with AVX512-BF16/AMX, embeddings within cosine ~0.99999 (default float32)')
    parser.add_argument('--device', default=None, help="cpu, cuda, cuda:1 (default: from the hyper-parameters' Device)")
    parser.add_argument('--export-torchscript', metavar='PATH', help='write the encoder as TorchScript (checked against eager)')
    parser.add_argument('--export-onnx', metavar='PATH', help='write the encoder as ONNX (needs the onnx package; checked with onnxruntime when installed)')
    return parser.parse_args(argv)


def run(args) -> None:
    problem = (args.input or args.trials or args.timeline) and folder_problem(args.output)
    if problem:
        raise OutputError(f'{problem}; choose another output folder with -o')
    model, hp, hp_source, steps = load_trained_encoder(args.checkpoint, args.hyper_parameters)
    for line in export_encoder(model, hp.Sound.Mel_Dim, window_length(hp, args.slices),
                               args.export_torchscript, args.export_onnx):
        print(line)
    if not (args.input or args.trials or args.timeline):
        return
    device = select_device(getattr(hp, 'Device', '-1'), args.device,
                           warn=lambda message: print(f'Warning: {message}', file=sys.stderr))
    encoder = SpeakerEncoder(model, hp, args.slices, device, args.batch, args.workers, args.precision)
    # The cores not decoding run the encoder: oversubscribed OpenMP threads slow it down many times.
    if args.threads:
        torch.set_num_threads(args.threads)
    else:
        cpu_defaults.set_threads(cpu_defaults.choose(args.precision == 'bfloat16').inference_threads
                                 if args.workers is None else max(1, cpu_defaults.usable_cores() - args.workers))
    step_text = f'step {steps}' if steps >= 0 else 'step unknown'
    print(f'{args.checkpoint} ({step_text}), hyper-parameters {hp_source}; {args.slices} slices '
          f'({encoder.window_length}-frame windows), {args.precision} on {device}; '
          f'{encoder.workers} decoding workers, {torch.get_num_threads()} encoder threads')
    trials = read_trials(args.trials) if args.trials else []
    cohort = score_norm.read_cohort(args.cohort, encoder.embedding_size, args.cohort_top) if args.cohort else None
    inputs = read_input(args.input) if args.input else None
    if args.shard:
        embed_shard(args, encoder, inputs)
        return
    outputs = OutputSet(args.output)
    try:
        write_outputs(args, encoder, inputs, trials, outputs.staging, cohort)
        earlier = [name for name in OUTPUT_FILES if os.path.isfile(os.path.join(args.output, name))]
        written = outputs.publish(OUTPUT_FILES)
    finally:
        outputs.discard()
    print(f'Wrote {", ".join(written)} in {args.output}'
          + (f' (the files of an earlier run there were removed: {", ".join(earlier)})' if earlier else ''))


def embed_shard(args, encoder: SpeakerEncoder, inputs: tuple) -> None:
    """--shard K/N: the K-th part of -i's files into OUT/shards/K-of-N, with its shard.json."""
    paths, labels = inputs
    part, parts = args.shard
    start, stop = shards.part_range(len(paths), part, parts)
    base = args.input if os.path.isdir(args.input) else os.path.dirname(os.path.abspath(args.input))
    settings = {'hp': {key: value for key, value in to_dict(encoder.hp).items() if key != 'Device'},
                'slices': args.slices, 'precision': args.precision}
    identity = shards.run_identity(paths, labels, base, args.checkpoint, settings)
    folder = shards.folder(args.output, part, parts)
    os.makedirs(folder, exist_ok=True)
    outputs = OutputSet(folder)
    try:
        rows, skipped, _, seconds = embed_inputs(encoder, paths[start:stop], labels[start:stop], outputs.staging,
                                                 False, '', speakers=False)
        title = f'{os.path.basename(args.checkpoint)}, {args.slices} slices'
        with open(outputs.path(shards.MANIFEST), 'w', encoding='utf-8') as stream:
            json.dump(shards.manifest(identity, part, parts, start, stop, len(paths), rows, title), stream, indent=1)
        outputs.publish(shards.FILES)
    finally:
        outputs.discard()
    print(f'Shard {part}/{parts}: files {start + 1:,}-{stop:,} of {len(paths):,}, {rows:,} embedded in {seconds:.1f} s'
          + (f', {len(skipped):,} skipped' if skipped else '') + f'; wrote {folder}. When all {parts} are there: '
          f'python Inference.py -o {args.output} --merge')


def merge_shards(args) -> None:
    """--merge: OUT/shards/* published in OUT as one run's files."""
    problem = folder_problem(args.output)
    if problem:
        raise OutputError(f'{problem}; choose another output folder with -o')
    outputs = OutputSet(args.output)
    try:
        rows, skipped, manifests = shards.merge(args.output, outputs.staging, not args.no_plot)
        written = outputs.publish(OUTPUT_FILES)
    finally:
        outputs.discard()
    print(f'Merged {len(manifests)} shards of {manifests[0]["total_files"]:,} files: {rows:,} rows'
          + (f', {skipped:,} skipped (see {args.output}/skipped.tsv)' if skipped else '')
          + f'; wrote {", ".join(written)} in {args.output}')


def write_partials(encoder: SpeakerEncoder, paths: list, skipped: dict, out_dir: str) -> int:
    """--partials: embeddings over time of every embedded file: partials.npy (float32 [rows, 256],
    unit rows) and partials.tsv (row, path, the partial's number in its file, start and end in
    seconds). Returns the rows written."""
    writer = NpyRowWriter(os.path.join(out_dir, 'partials.npy'), encoder.embedding_size)
    rate = encoder.hp.Sound.Sample_Rate
    with open(os.path.join(out_dir, 'partials.tsv'), 'w', encoding='utf-8') as table:
        table.write('row\tpath\tpartial\tstart_s\tend_s\n')
        for path in tqdm([path for path in paths if path not in skipped], desc='Partials', unit='utt'):
            _, partials, spans = encoder.embed_utterance(audio.load_audio(path, rate), rate, return_partials=True)
            for number, (vector, span) in enumerate(zip(partials, spans)):
                table.write(f'{writer.rows}\t{path}\t{number}\t{span.start / rate:.4f}\t{span.stop / rate:.4f}\n')
                writer.append(vector)
    writer.close()
    return writer.rows


def write_outputs(args, encoder: SpeakerEncoder, inputs, trials: list, out_dir: str, cohort=None) -> None:
    """Embed -i's files, score --trials (AS-norm with a cohort) and draw --timeline into out_dir
    (the run's staging folder)."""
    trial_files = {os.path.abspath(os.path.join(args.root, path)): path
                   for _, first, second in trials for path in (first, second)}
    known = {}
    if inputs:
        paths, labels = inputs
        rows, skipped, kept, seconds = embed_inputs(encoder, paths, labels, out_dir, not args.no_plot,
                                                    f'{os.path.basename(args.checkpoint)}, {args.slices} slices',
                                                    keep_rows_of=set(trial_files))
        known = {trial_files[path]: vector for path, vector in kept.items()}
        print(f'Embedded {rows:,} of {len(paths):,} files in {seconds:.1f} s ({len(paths) / seconds:.1f} utterances/s)'
              + (f'; {len(skipped):,} skipped (see {args.output}/skipped.tsv for why)' if skipped else ''))
        for reason, count in sorted(Counter(reason.split(':')[0] for reason in skipped.values()).items()):
            print(f'  skipped: {reason}: {count:,}')
        if args.partials:
            print(f'{write_partials(encoder, paths, skipped, out_dir):,} partial embeddings over time of {rows:,} files')
    if args.timeline:
        partials, shares = write_timeline(encoder, args.timeline, args.speakers, out_dir, not args.no_plot)
        print(f'Timeline of {args.timeline}: {partials:,} partials against {len(shares)} speakers; most similar in '
              + ', '.join(f'{name} {100 * share:.0f} %' for name, share in sorted(shares.items(), key=lambda item: -item[1]))
              + ' of them')
    if trials:
        result = evaluate_trials(encoder, trials, args.root, progress=True, known=known, cohort=cohort,
                                 top=args.cohort_top)
        write_verification(result, len(trials), out_dir)
        targets = np.array([target for target, _, _ in result.trials], dtype=bool)
        if not args.no_plot and targets.any() and not targets.all():
            plot_verification(result.scores, targets, out_dir,
                              f'{os.path.basename(args.checkpoint)}, {len(result.trials):,} trials'
                              + (f', {result.normalisation}' if cohort is not None else ''),
                              'cosine score' if cohort is None else 'AS-norm score')


def usage_problem(args) -> str:
    """A combination of flags that cannot run, as one line; None when they can."""
    if args.merge:
        if args.input or args.trials or args.shard or args.partials or args.export_torchscript or args.export_onnx:
            return '--merge publishes the shards already in -o OUT: give only -o (and --no-plot)'
        return None
    if not args.checkpoint:
        return 'give a checkpoint with -c (or --merge, with -o, to publish shards)'
    if args.shard and not args.input:
        return '--shard K/N embeds a part of the files of -i: give -i INPUT too'
    if args.shard and (args.trials or args.partials or args.timeline):
        return '--shard embeds -i only: run --trials, --partials and --timeline in a run of their own'
    if args.cohort and not args.trials:
        return '--cohort normalises the scores of --trials: give --trials FILE too'
    if bool(args.timeline) != bool(args.speakers):
        return '--timeline RECORDING and --speakers PATH... go together: the recording, and the speakers to look for in it'
    if args.partials and not args.input:
        return '--partials embeds the files of -i over time: give -i INPUT too'
    if not (args.input or args.trials or args.timeline or args.export_torchscript or args.export_onnx):
        return 'nothing to do: give -i INPUT, --trials FILE, --timeline RECORDING, --export-torchscript or --export-onnx'
    return None


def main(argv=None) -> int:
    args = parse_arguments(argv)
    problem = usage_problem(args)
    if problem:
        print(f'Inference.py: {problem}', file=sys.stderr)
        return 2
    try:
        if args.merge:
            merge_shards(args)
        else:
            run(args)
    except USER_ERRORS as error:
        print(f'Inference.py: {error}', file=sys.stderr)
        return 2
    except OSError as error:             # a disk that fills, a folder made read-only while running
        print(f'Inference.py: {error.filename or args.output}: cannot be written ({error.strerror or error}; '
              f'{space_note(args.output)}): the earlier outputs there are whole; free space or choose another '
              f'output folder with -o, and run again', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
