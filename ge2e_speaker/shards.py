"""Inference across machines: `--shard K/N` embeds the K-th of N contiguous parts of the input
into OUT/shards/K-of-N/; `--merge` checks that the N parts are there, whole and of one run, and
publishes them in OUT as the files one run would have written (embedding_set.py).

A run is named by a hash of what decides its rows (run_identity): the input's files and labels
(relative to the input folder or list, so that machines mounting the data elsewhere agree), the
checkpoint's bytes, its hyper-parameters, the slice mode and the precision.
"""
import argparse
import glob
import hashlib
import json
import os

import numpy as np

from .atomic_files import file_digest
from .embedding_set import ROW_FILES, EmbeddingSet

FOLDER = 'shards'
MANIFEST = 'shard.json'
FILES = ROW_FILES + (MANIFEST,)     # one shard's set, published whole
MANIFEST_KEYS = {'run', 'part', 'parts', 'files', 'total_files', 'rows', 'title'}


class ShardError(RuntimeError):
    """Shards that cannot be merged (missing, incomplete, of another run); str is one line."""


def parse_shard(text: str) -> tuple:
    """An argparse type: 'K/N' with 1 <= K <= N -> (K, N)."""
    part, _, total = text.partition('/')
    if part.isdigit() and total.isdigit() and 1 <= int(part) <= int(total):
        return int(part), int(total)
    raise argparse.ArgumentTypeError(f'{text!r} is not K/N with 1 <= K <= N (for example 2/8: the second of 8 parts)')


def part_range(count: int, part: int, parts: int) -> tuple:
    """Files [start, stop) of part `part` (1-based) of `parts` over count files: contiguous, sizes
    differing by at most one, so that the parts in order are the input in order."""
    return (part - 1) * count // parts, part * count // parts


def folder(out_dir: str, part: int, parts: int) -> str:
    return os.path.join(out_dir, FOLDER, f'{part}-of-{parts}')


def run_identity(paths: list, labels: list, input_base: str, checkpoint: str, settings: dict) -> str:
    """sha256 of the input (paths relative to input_base, labels), the checkpoint file's bytes
    and settings (hyper-parameters, slices, precision: anything JSON)."""
    digest = hashlib.sha256()
    digest.update(file_digest(checkpoint).encode())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for path, label in zip(paths, labels):
        digest.update(f'{os.path.relpath(os.path.abspath(path), input_base)}\t{label}\n'.encode('utf-8', 'surrogateescape'))
    return digest.hexdigest()


def manifest(identity: str, part: int, parts: int, start: int, stop: int, total: int, rows: int,
             title: str) -> dict:
    """What shard.json records: the run, which files of the input this part holds, its rows, and
    the title of the merged t-SNE figure."""
    return {'run': identity, 'part': part, 'parts': parts, 'files': [start, stop], 'total_files': total,
            'rows': rows, 'title': title}


def _read_manifest(shard: str) -> dict:
    path = os.path.join(shard, MANIFEST)
    if not os.path.isfile(path):
        raise ShardError(f'{shard}: incomplete (no {MANIFEST}: its run did not finish); run that shard again')
    try:
        with open(path, encoding='utf-8') as stream:
            found = json.load(stream)
    except ValueError:
        found = None
    if not isinstance(found, dict) or not MANIFEST_KEYS <= found.keys():
        raise ShardError(f'{path}: not a shard manifest of Inference.py --shard; remove {shard} and run that shard again')
    return found


def read_shards(out_dir: str) -> list:
    """The manifests of OUT/shards/*, in part order, after checking that they make one whole run:
    every part of 1..N present and finished, one run identity, parts that tile the input, and
    files that hold the rows the manifest says. Raises ShardError naming what is wrong."""
    root = os.path.join(out_dir, FOLDER)
    shards = sorted(entry for entry in glob.glob(os.path.join(glob.escape(root), '*-of-*')) if os.path.isdir(entry))
    if not shards:
        raise ShardError(f'{root}: no shards to merge; run Inference.py -i INPUT -o {out_dir} --shard K/N first')
    found = {shard: _read_manifest(shard) for shard in shards}
    first_shard, first = next(iter(found.items()))
    for shard, other in found.items():
        if other['run'] != first['run'] or other['parts'] != first['parts']:
            raise ShardError(f'{shard} is from another run than {first_shard} (another input, checkpoint, settings '
                             f'or part count): remove the shards of the run you do not want and merge again')
    parts = first['parts']
    by_part = {other['part']: (shard, other) for shard, other in found.items()}
    missing = [part for part in range(1, parts + 1) if part not in by_part]
    if missing:
        listed = ', '.join(f'{part}/{parts}' for part in missing)
        raise ShardError(f'{root}: shard {listed} missing ({len(by_part)} of {parts} there); run Inference.py with '
                         f'--shard {missing[0]}/{parts} (same -c, -i and settings) and merge again')
    ordered = [by_part[part] for part in range(1, parts + 1)]
    stop = 0
    for shard, other in ordered:
        start, end = other['files']
        if start != stop or other['total_files'] != first['total_files']:
            raise ShardError(f'{shard}: its files {start}-{end} do not follow the previous shard\'s (which ended at {stop}); run it again')
        stop = end
        _check_rows(shard, other['rows'])
    if stop != first['total_files']:
        raise ShardError(f'{root}: the shards cover {stop} of {first["total_files"]} files; run the last shard again')
    return [other | {'folder': shard} for shard, other in ordered]


def _check_rows(shard: str, rows: int) -> None:
    """embeddings.npy and the index of a shard hold `rows` rows (not a file of another run)."""
    try:
        matrix = np.load(os.path.join(shard, 'embeddings.npy'), mmap_mode='r')
        with open(os.path.join(shard, 'embeddings_index.tsv'), encoding='utf-8') as stream:
            index_rows = sum(1 for _ in stream) - 1
    except (OSError, ValueError) as error:
        raise ShardError(f'{shard}: its files cannot be read ({error}); run that shard again') from None
    if matrix.shape[0] != rows or index_rows != rows or not np.isfinite(matrix).all():
        raise ShardError(f'{shard}: embeddings.npy ({matrix.shape[0]} rows) and embeddings_index.tsv ({index_rows}) '
                         f'do not hold the {rows} finite rows of its {MANIFEST}; run that shard again')


def merge(out_dir: str, staging: str, plot: bool) -> tuple:
    """Writes the rows of every shard of out_dir, in order, into staging (embedding_set.py's
    files). Returns (rows, skipped files, the manifests)."""
    manifests = read_shards(out_dir)
    columns = np.load(os.path.join(manifests[0]['folder'], 'embeddings.npy'), mmap_mode='r').shape[1]
    output = EmbeddingSet(staging, columns, announce=False)
    for shard in manifests:
        matrix = np.load(os.path.join(shard['folder'], 'embeddings.npy'), mmap_mode='r')
        with open(os.path.join(shard['folder'], 'embeddings_index.tsv'), encoding='utf-8') as stream:
            next(stream)
            for row, line in enumerate(stream):
                path, label = line.rstrip('\n').split('\t', 1)
                output.add(path, label, np.asarray(matrix[row]))
        with open(os.path.join(shard['folder'], 'skipped.tsv'), encoding='utf-8') as stream:
            next(stream)
            for line in stream:
                path, reason = line.rstrip('\n').split('\t', 1)
                output.skip(path, reason)
    return output.close(plot, manifests[0]['title']), len(output.reasons), manifests
