"""Speaker embeddings from audio files: the command line.

    python Inference.py -c Results/Checkpoint/S_100000.pkl -i wav_folder -o Results/Inference
    python Inference.py -c S_100000.pkl --trials veri_test.txt --root vox1_test/wav -o Results/Verification

Outputs in OUT_DIR: embeddings.npy (float32 [utterances, 256], rows L2-normalised, in input
order), embeddings_index.tsv (path and label of each row), speaker_embeddings.pickle
({label: float32 [256]}), tsne.png, skipped.tsv (files that could not be embedded, with why);
with --trials: scores.txt and verification.json (EER and minDCF). The files of one run replace
those of an earlier run in OUT_DIR as a set (atomic_files.OutputSet): never a mix of two runs.

Inference.py at the top of the repository and the ge2e-inference command run main(). The work
is done by embedding.py (the Python API), verification.py, plots.py, export.py, inputs.py and
npy_writer.py; the names the API documents are importable from here too, and from Inference.py
(`from Inference import load_encoder`).
"""
import argparse
import os
import pickle
import sys
import time
from collections import Counter

import numpy as np
import torch
from tqdm import tqdm

from . import audio, cpu_defaults
from .atomic_files import OutputSet, folder_problem, space_note
from .checkpoints import CheckpointError, DeviceError, load_trained_encoder, select_device
from .embedding import PRECISIONS, SLICE_MODES, SpeakerEncoder, default_workers, load_encoder, normalise, window_length
from .export import ExportError, export_encoder
from .hyper_parameters import HyperParameterError
from .inputs import UNLABELLED, InputError, read_input
from .npy_writer import NpyRowWriter
from .plots import plot_tsne, plot_verification
from .verification import (TrialListError, VerificationResult, evaluate_trials, read_trials, score_trials,
                           write_verification)

__all__ = ['SpeakerEncoder', 'load_encoder', 'VerificationResult', 'evaluate_trials', 'read_trials', 'score_trials',
           'main']   # the Python API of embedding.py and verification.py, importable from here as before

TSNE_LABELS = 30            # the t-SNE figure shows at most this many labels,
TSNE_PER_LABEL = 20         # and at most this many utterances of each
OUTPUT_FILES = ('embeddings.npy', 'embeddings_index.tsv', 'speaker_embeddings.pickle', 'tsne.png', 'skipped.tsv',
                'scores.txt', 'verification.json', 'det.png', 'score_histogram.png', 'partials.npy', 'partials.tsv')          # one run's set: replaced whole


class OutputError(RuntimeError):
    """An output folder that cannot take the files; str is one line."""


USER_ERRORS = (CheckpointError, DeviceError, ExportError, HyperParameterError, InputError, OutputError,
               TrialListError)


def embed_inputs(encoder: SpeakerEncoder, paths: list, labels: list, out_dir: str, plot: bool, title: str,
                 keep_rows_of: set = frozenset()) -> tuple[int, dict, dict, float]:
    """The -i pass: writes embeddings.npy, embeddings_index.tsv, skipped.tsv,
    speaker_embeddings.pickle and tsne.png in out_dir.

    Returns (rows written, {path: reason} of skipped files, {absolute path: vector or reason} of
    the paths in keep_rows_of, seconds spent embedding).
    """
    writer = NpyRowWriter(os.path.join(out_dir, 'embeddings.npy'), encoder.embedding_size)
    speaker_sums, speaker_counts = {}, {}
    sample_vectors, sample_labels, sample_counts = [], [], {}
    skipped, kept = {}, {}
    started = time.perf_counter()
    with open(os.path.join(out_dir, 'embeddings_index.tsv'), 'w', encoding='utf-8') as index_file, \
            open(os.path.join(out_dir, 'skipped.tsv'), 'w', encoding='utf-8') as skipped_file:
        index_file.write('path\tlabel\n')
        skipped_file.write('path\treason\n')
        for index, vector, reason in encoder.stream_files(paths, progress=True):
            path, label = paths[index], labels[index]
            if reason is not None:
                skipped[path] = reason
                if os.path.abspath(path) in keep_rows_of:
                    kept[os.path.abspath(path)] = reason
                skipped_file.write(f'{path}\t{reason}\n')
                tqdm.write(f'skipped {path}: {reason}')
                continue
            writer.append(vector)
            index_file.write(f'{path}\t{label}\n')
            if label != UNLABELLED:
                speaker_sums[label] = speaker_sums.get(label, 0.0) + vector.astype(np.float64)
                speaker_counts[label] = speaker_counts.get(label, 0) + 1
            if (label in sample_counts or len(sample_counts) < TSNE_LABELS) and sample_counts.get(label, 0) < TSNE_PER_LABEL:
                sample_counts[label] = sample_counts.get(label, 0) + 1
                sample_vectors.append(vector)
                sample_labels.append(label)
            if os.path.abspath(path) in keep_rows_of:
                kept[os.path.abspath(path)] = vector
    seconds = time.perf_counter() - started
    writer.close()
    speakers = {label: normalise(total) for label, total in speaker_sums.items()}
    with open(os.path.join(out_dir, 'speaker_embeddings.pickle'), 'wb') as stream:
        pickle.dump(speakers, stream, protocol=4)
    if plot and not plot_tsne(np.array(sample_vectors), sample_labels, os.path.join(out_dir, 'tsne.png'), title):
        print('tsne.png not drawn: fewer than 5 utterances')
    return writer.rows, skipped, kept, seconds


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
    parser.add_argument('-c', '--checkpoint', required=True, help="a checkpoint: this project's or the seed's S_<step>.pkl")
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
    parser.add_argument('--no-plot', action='store_true', help='skip the figures (tsne.png, det.png, score_histogram.png)')
    parser.add_argument('--trials', help="a VoxCeleb trial list ('1 id10270/x/00001.wav id10270/y/00008.wav' per line)")
    parser.add_argument('--root', default='', help='the folder the trial paths are relative to')
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
    problem = (args.input or args.trials) and folder_problem(args.output)
    if problem:
        raise OutputError(f'{problem}; choose another output folder with -o')
    model, hp, hp_source, steps = load_trained_encoder(args.checkpoint, args.hyper_parameters)
    for line in export_encoder(model, hp.Sound.Mel_Dim, window_length(hp, args.slices),
                               args.export_torchscript, args.export_onnx):
        print(line)
    if not (args.input or args.trials):
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
    inputs = read_input(args.input) if args.input else None
    outputs = OutputSet(args.output)
    try:
        write_outputs(args, encoder, inputs, trials, outputs.staging)
        earlier = [name for name in OUTPUT_FILES if os.path.isfile(os.path.join(args.output, name))]
        written = outputs.publish(OUTPUT_FILES)
    finally:
        outputs.discard()
    print(f'Wrote {", ".join(written)} in {args.output}'
          + (f' (the files of an earlier run there were removed: {", ".join(earlier)})' if earlier else ''))


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


def write_outputs(args, encoder: SpeakerEncoder, inputs, trials: list, out_dir: str) -> None:
    """Embed -i's files and score --trials into out_dir (the run's staging folder)."""
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
    if trials:
        result = evaluate_trials(encoder, trials, args.root, progress=True, known=known)
        write_verification(result, len(trials), out_dir)
        targets = np.array([target for target, _, _ in result.trials], dtype=bool)
        if not args.no_plot and targets.any() and not targets.all():
            plot_verification(result.scores, targets, out_dir, f'{os.path.basename(args.checkpoint)}, '
                                                               f'{len(result.trials):,} trials')


def main(argv=None) -> int:
    args = parse_arguments(argv)
    if args.partials and not args.input:
        print('Inference.py: --partials embeds the files of -i over time: give -i INPUT too', file=sys.stderr)
        return 2
    if not (args.input or args.trials or args.export_torchscript or args.export_onnx):
        print('Inference.py: nothing to do: give -i INPUT, --trials FILE, --export-torchscript or --export-onnx',
              file=sys.stderr)
        return 2
    try:
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
