"""The packed pattern store: one pattern root's pickles as a few memory-mapped arrays.

A cache derived from <root>/METADATA.PICKLE and the pickles it lists (they stay the
interchange format), under <root>/.packed/:

    <part>.mels    float32 [frames, Mel_Dim], raw: the mels of the part's patterns one after another
    <part>.rows    one line per pattern, in .mels order: key, frames, pickle bytes, pickle mtime_ns
    index-<g>.npz  every pattern of the metadata: key (sorted), part, first frame, frames
    STORE.json     the manifest, written last: parts, index, the metadata's sha256 and the mtimes
                   of the <Dataset> folders; readers use nothing it does not list

A part is appended pattern by pattern; its log (<part>.rows.tmp) gets a line once the pattern's
frames are written, so a killed build resumes where it stopped; the log is renamed to .rows when
the part is complete. `pack(root, shard=(K, N))` packs the K-th of N shares of what is missing
into its own part; `pack(root)` adopts finished parts, packs the rest, then writes the index and
the manifest (the merge). Patterns written through atomic_files.write_atomically (a rename) change
their folder's mtime, so a reader sees an added, removed or rewritten pattern without opening it.
"""
import glob
import io
import json
import mmap
import os
import pickle
import sys

import numpy as np
from tqdm import tqdm

from . import atomic_files, patterns, slicing
from .atomic_files import file_digest

STORE_FOLDER = '.packed'
MANIFEST = 'STORE.json'
FORMAT = 1
DTYPE = np.dtype('<f4')       # float32, as in the pickles: batches are bit-identical to theirs
COMPACT_BELOW = 0.5           # a part whose live share of frames falls below this is repacked


class StoreError(ValueError):
    """The store cannot be built from these patterns (the message names the file and the fix)."""


def store_folder(root: str) -> str:
    return os.path.join(root, STORE_FOLDER)


def metadata_patterns(metadata: dict) -> dict:
    """{key '<Dataset>/<name>.PICKLE': frames (None if the metadata does not say)} of every pattern listed."""
    lengths = metadata.get('Mel_Length_Dict', {})
    return {patterns.pattern_key(file, dataset): lengths.get(file)
            for (dataset, _), files in metadata['File_List_by_Speaker_Dict'].items() for file in files}


def folder_mtimes(root: str, datasets) -> dict:
    """{dataset: mtime_ns of <root>/<dataset>} (-1 for a missing folder)."""
    def mtime(dataset):
        try:
            return os.stat(os.path.join(root, dataset)).st_mtime_ns
        except FileNotFoundError:
            return -1
    return {dataset: mtime(dataset) for dataset in sorted(datasets)}


def read_rows(path: str) -> list:
    """[(key, frames, bytes, mtime_ns)] of a part's rows; a line cut short by a kill is dropped."""
    rows = []
    with open(path, encoding='utf-8') as stream:
        for line in stream:
            fields = line.rstrip('\n').split('\t')
            if line.endswith('\n') and len(fields) == 4 and all(field.isdigit() for field in fields[1:]):
                rows.append((fields[0], int(fields[1]), int(fields[2]), int(fields[3])))
    return rows


def _row_line(key: str, frames: int, size: int, mtime: int) -> str:
    return f'{key}\t{frames}\t{size}\t{mtime}\n'


class PartWriter:
    """Appends patterns to <folder>/<name>.mels, resuming a log a killed run left."""

    def __init__(self, folder: str, name: str, mel_dim: int):
        self.mel_dim = mel_dim
        self.mels_path = os.path.join(folder, name + '.mels')
        self.rows_path = os.path.join(folder, name + '.rows')
        self.log_path = self.rows_path + '.tmp'
        self.rows = read_rows(self.log_path) if os.path.isfile(self.log_path) else []
        # Rewrite the log without a cut-off last line, and cut frames written after the last row.
        atomic_files.write_atomically(self.log_path, ''.join(_row_line(*row) for row in self.rows).encode())
        self.frames = sum(row[1] for row in self.rows)
        self._mels = open(self.mels_path, 'r+b' if os.path.isfile(self.mels_path) and self.rows else 'wb')
        self._mels.truncate(self.frames * mel_dim * DTYPE.itemsize)
        self._mels.seek(0, os.SEEK_END)
        self._log = open(self.log_path, 'a', encoding='utf-8')

    def add(self, key: str, mel: np.ndarray, size: int, mtime: int) -> None:
        """mel: [frames, mel_dim]."""
        self._mels.write(np.ascontiguousarray(mel, dtype=DTYPE).data)
        self._mels.flush()                     # frames first: a logged row always has its frames
        self._log.write(_row_line(key, mel.shape[0], size, mtime))
        self._log.flush()
        self.rows.append((key, mel.shape[0], size, mtime))
        self.frames += mel.shape[0]

    def finish(self) -> None:
        self.close()
        os.replace(self.log_path, self.rows_path)

    def close(self) -> None:
        self._mels.close()
        self._log.close()


def read_manifest(folder: str):
    """The manifest dict, or None when there is none or it cannot be read."""
    try:
        with open(os.path.join(folder, MANIFEST), encoding='utf-8') as stream:
            return json.load(stream)
    except (OSError, ValueError):
        return None


def _stat_patterns(root: str, wanted: dict, metadata_path: str) -> dict:
    """{key: (bytes, mtime_ns)} of every pattern the metadata lists."""
    found = {}
    for key in tqdm(sorted(wanted), desc=f'Checking {root}', unit='pattern', disable=len(wanted) < 10000):
        try:
            status = os.stat(os.path.join(root, key))
        except FileNotFoundError:
            raise StoreError(f'{os.path.join(root, key)}: listed in {metadata_path} but missing; rebuild the '
                             f'metadata and the store with: python Pattern_Generate.py --pack') from None
        found[key] = (status.st_size, status.st_mtime_ns)
    return found


def _live_rows(folder: str, parts: list, wanted: dict, stats: dict) -> dict:
    """{key: (part, first frame, frames)} of the rows of finished parts that still hold their pattern;
    parts whose live frames fall below COMPACT_BELOW of their size are left out (repacked)."""
    live = {}
    for part in parts:
        rows, start, kept = {}, 0, 0
        for key, frames, size, mtime in read_rows(os.path.join(folder, part + '.rows')):
            if key in stats and key not in live and key not in rows and wanted[key] in (None, frames) \
                    and stats[key] == (size, mtime):
                rows[key] = (part, start, frames)
                kept += frames
            start += frames
        if rows and kept >= COMPACT_BELOW * start:
            live.update(rows)
    return live


def _write_index(folder: str, generation: int, live: dict, parts: list) -> str:
    """index-<generation>.npz: key (sorted), part (position in parts), first frame, frames."""
    keys = sorted(live)
    number = {part: position for position, part in enumerate(parts)}
    arrays = {'key': np.array([key.encode() for key in keys], dtype=np.bytes_),
              'part': np.array([number[live[key][0]] for key in keys], dtype=np.int32),
              'offset': np.array([live[key][1] for key in keys], dtype=np.int64),
              'frames': np.array([live[key][2] for key in keys], dtype=np.int32)}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    name = f'index-{generation}.npz'
    atomic_files.write_atomically(os.path.join(folder, name), buffer.getvalue())
    return name


def pack(root: str, metadata_file: str = 'METADATA.PICKLE', shard: tuple = None, sound_hp=None, log=print) -> dict:
    """Build or update <root>/.packed from the metadata and the pickles it lists.

    shard=(K, N): pack only the K-th of N shares of the missing patterns into a part of its own
    (N processes or machines at once), then merge with pack(root). Returns counts:
    patterns, packed (read from pickles now), reused (taken from earlier parts).
    """
    metadata_path = os.path.join(root, metadata_file)
    metadata = patterns.load_metadata(root, metadata_file, sound_hp)
    digest = file_digest(metadata_path)
    wanted = metadata_patterns(metadata)
    folder = store_folder(root)
    os.makedirs(folder, exist_ok=True)
    signature = folder_mtimes(root, {key.split('/')[0] for key in wanted})   # before the stats: a change meanwhile shows later
    stats = _stat_patterns(root, wanted, metadata_path)
    manifest = read_manifest(folder)
    committed = [part['name'] for part in manifest['parts']] if manifest and manifest.get('format') == FORMAT else []
    generation = manifest.get('generation', -1) + 1 if manifest else 0
    merging = shard is None
    finished = sorted(os.path.basename(path)[:-len('.rows')] for path in glob.glob(os.path.join(folder, f'g{generation}-*.rows')))
    live = _live_rows(folder, committed + (finished if merging else []), wanted, stats)
    todo = sorted(key for key in wanted if key not in live)
    number = 0
    while merging and f'g{generation}-all{number}' in finished:   # finished by a merge killed before its manifest
        number += 1
    name = f'g{generation}-all{number}'
    if shard is not None:
        index, count = shard
        todo = todo[index * len(todo) // count:(index + 1) * len(todo) // count]
        name = f'g{generation}-shard{index}of{count}'
        if os.path.isfile(os.path.join(folder, name + '.rows')):
            log(f'{folder}: shard {index}/{count} is already packed ({name})')
            return {'patterns': len(wanted), 'packed': 0, 'reused': len(wanted) - len(todo)}
    packed = _pack_part(root, folder, name, todo, wanted, stats, metadata, metadata_path, log) if todo else []
    if not merging:
        log(f'{folder}: shard {shard[0]}/{shard[1]}: {len(todo)} patterns in {name}; when every shard has '
            f'finished, merge with: python Pattern_Generate.py --pack')
        return {'patterns': len(wanted), 'packed': len(todo), 'reused': 0}
    live.update(packed)
    parts = sorted({part for part, _, _ in live.values()})
    counts = {'patterns': len(wanted), 'packed': len(packed), 'reused': len(wanted) - len(packed)}
    if manifest and not packed and parts == committed and manifest['metadata_sha256'] == digest \
            and manifest['folders'] == signature and len(live) == manifest['patterns']:
        log(f'{folder}: up to date ({len(wanted)} patterns)')
        return counts
    commit(folder, generation, live, parts, _mel_dim(metadata, folder, parts), metadata_file, digest, signature, log)
    log(f'{folder}: {len(packed)} packed now, {counts["reused"]} reused')
    return counts


def commit(folder: str, generation: int, live: dict, parts: list, mel_dim: int, metadata_file: str, digest: str,
           signature: dict, log=print) -> dict:
    """Write the index and then the manifest of `live` rows ({key: (part, first frame, frames)});
    delete every file of the folder they do not name. Returns the manifest."""
    part_frames = {part: os.path.getsize(os.path.join(folder, part + '.mels')) // (mel_dim * DTYPE.itemsize) for part in parts}
    manifest = {'format': FORMAT, 'dtype': DTYPE.str, 'mel_dim': mel_dim, 'generation': generation,
                'metadata_file': metadata_file, 'metadata_sha256': digest, 'folders': signature,
                'index': _write_index(folder, generation, live, parts),
                'parts': [{'name': part, 'frames': part_frames[part]} for part in parts],
                'patterns': len(live), 'frames': sum(frames for _, _, frames in live.values())}
    atomic_files.write_atomically(os.path.join(folder, MANIFEST), json.dumps(manifest, indent=1).encode())
    keep = {MANIFEST, manifest['index']} | {part + suffix for part in parts for suffix in ('.mels', '.rows')}
    for path in glob.glob(os.path.join(folder, '*')):
        if os.path.basename(path) not in keep:
            os.remove(path)
    size = sum(part_frames.values()) * mel_dim * DTYPE.itemsize
    log(f'{folder}: {len(live)} patterns, {manifest["frames"]} frames ({size / 2 ** 30:.2f} GiB) in {len(parts)} parts')
    return manifest


def _mel_dim(metadata: dict, folder: str, parts: list) -> int:
    if 'Mel_Dim' in metadata:
        return int(metadata['Mel_Dim'])
    rows = read_rows(os.path.join(folder, parts[0] + '.rows'))
    return os.path.getsize(os.path.join(folder, parts[0] + '.mels')) // (sum(row[1] for row in rows) * DTYPE.itemsize)


def _pack_part(root, folder, name, todo, wanted, stats, metadata, metadata_path, log) -> dict:
    """Append the todo patterns to part `name` (resuming it) and finish it. Returns its live rows."""
    mel_dim = int(metadata.get('Mel_Dim') or patterns.load_pickle(os.path.join(root, todo[0]))['Mel'].shape[1])
    writer = PartWriter(folder, name, mel_dim)
    resumed = {key for key, frames, size, mtime in writer.rows if stats.get(key) == (size, mtime)}
    if writer.rows:
        log(f'{folder}: resuming {name} after {len(writer.rows)} patterns')
    try:
        for key in tqdm([key for key in todo if key not in resumed], desc=f'Packing {root}', unit='pattern',
                        smoothing=0.05):
            path = os.path.join(root, key)
            try:
                mel = patterns.load_pickle(path)['Mel']
            except (pickle.UnpicklingError, KeyError, TypeError) as error:
                raise StoreError(f'{error}; regenerate the pattern, or leave it out: python Pattern_Generate.py --pack '
                                 f'(after deleting it)') from None
            if getattr(mel, 'ndim', 0) != 2 or mel.shape[1] != mel_dim or wanted[key] not in (None, mel.shape[0]):
                raise StoreError(f'{path}: mel of shape {getattr(mel, "shape", None)}, {metadata_path} says '
                                 f'[{wanted[key]}, {mel_dim}]: the metadata is out of date; rebuild it and the store '
                                 f'with: python Pattern_Generate.py --pack')
            writer.add(key, mel, *stats[key])
    except BaseException:
        writer.close()
        raise
    writer.finish()
    start, rows = 0, {}
    for key, frames, size, mtime in writer.rows:
        if stats.get(key) == (size, mtime) and key not in rows:
            rows[key] = (name, start, frames)
        start += frames
    return rows


def pack_roots(hp, shard: tuple = None, log=print) -> int:
    """Pattern_Generate.py --pack: pack or update the store of each pattern root the
    hyper-parameters name (Train.Train_Pattern, Train.Eval_Pattern). Returns an exit status."""
    packed = 0
    for pattern_hp in (hp.Train.Train_Pattern, hp.Train.Eval_Pattern):
        if not os.path.isfile(os.path.join(pattern_hp.Path, pattern_hp.Metadata_File)):
            log(f'{pattern_hp.Path}: no {pattern_hp.Metadata_File}, nothing to pack')
            continue
        try:
            pack(pattern_hp.Path, pattern_hp.Metadata_File, shard, hp.Sound, log)
        except (StoreError, patterns.MetadataError) as error:
            print(f'--pack: {error}', file=sys.stderr)
            return 1
        except OSError as error:             # a full disk or quota while a part is written
            print(f'--pack: {pattern_hp.Path}: cannot write the packed store there ({error.strerror or error}; '
                  f'{atomic_files.space_note(pattern_hp.Path)}): the patterns and the parts packed so far are kept; '
                  f'free space and run --pack again to go on', file=sys.stderr)
            return 1
        packed += 1
    if not packed:
        print('--pack: no pattern root has metadata; generate patterns first (python Pattern_Generate.py -vctk DIR ...)',
              file=sys.stderr)
        return 1
    return 0


class PackedStore:
    """A current store, read-only: mel(row) is a view [frames, mel_dim] of a memory-mapped part,
    so slicing it reads only the frames sliced. Maps are opened lazily in each process."""

    def __init__(self, folder: str, manifest: dict, index):
        self.folder, self.mel_dim = folder, manifest['mel_dim']
        self.part_paths = [os.path.join(folder, part['name'] + '.mels') for part in manifest['parts']]
        self.keys, self.part, self.offset, self.frames = (index[name] for name in ('key', 'part', 'offset', 'frames'))
        self._maps, self._mmaps, self._pid = None, None, None

    def __len__(self) -> int:
        return len(self.keys)

    def locate(self, keys: list) -> np.ndarray:
        """Rows (int64) of the given keys, '<Dataset>/<name>.PICKLE'. Raises StoreError for a key not in the store."""
        wanted = np.array([key.encode() for key in keys], dtype=np.bytes_)
        rows = np.minimum(np.searchsorted(self.keys, wanted), len(self.keys) - 1)
        missing = np.flatnonzero(self.keys[rows] != wanted)
        if len(missing):
            raise StoreError(f'{self.folder}: {len(missing)} patterns not packed (e.g. {keys[missing[0]]}); '
                             f'update the store with: python Pattern_Generate.py --pack')
        return rows.astype(np.int64)

    def mel(self, row: int) -> np.ndarray:
        """[frames, mel_dim] float32, a view of the map (read-only)."""
        offset = self.offset[row]
        return self._arrays()[self.part[row]][offset:offset + self.frames[row]]

    def gather(self, rows: np.ndarray, offsets: np.ndarray, length: int, out: np.ndarray) -> None:
        """Crops of `length` frames at `offsets` of rows [crops] into out [length, crops, mel_dim]; a
        shorter pattern whole, reflect-padded (slicing.crop_or_pad). Reads only the crops' frames."""
        frames = self.frames[rows]
        self.will_need(rows, offsets, np.minimum(frames, length))
        maps = self._arrays()
        starts = (self.offset[rows] + offsets).tolist()
        for column, (part, start, count) in enumerate(zip(self.part[rows].tolist(), starts, frames.tolist())):
            if count >= length:
                out[:, column] = maps[part][start:start + length]
            else:
                out[:, column] = slicing.reflect_pad(maps[part][start:start + count], length)

    def will_need(self, rows: np.ndarray, starts: np.ndarray, frames: np.ndarray) -> None:
        """Ask the kernel to read frames [start, start + frames) of each row now, one request per
        crop for all of them at once (touching a cold map reads a page at a time, and waits)."""
        row_bytes = self.mel_dim * DTYPE.itemsize
        first = (self.offset[rows] + starts) * row_bytes
        size = frames * row_bytes + first % mmap.PAGESIZE
        first -= first % mmap.PAGESIZE
        self._arrays()
        for part, start, length in zip(self.part[rows].tolist(), first.tolist(), size.tolist()):
            self._mmaps[part].madvise(mmap.MADV_WILLNEED, start, length)

    def _arrays(self) -> list:
        """[frames, mel_dim] arrays over the parts' maps (self._mmaps), opened once per process."""
        if self._pid != os.getpid():
            maps, mmaps = [], []
            for path in self.part_paths:
                with open(path, 'rb') as stream:
                    mapped = mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ)
                mapped.madvise(mmap.MADV_RANDOM)          # read only the pages touched: a crop, not its neighbours
                mmaps.append(mapped)
                maps.append(np.frombuffer(mapped, dtype=DTYPE).reshape(-1, self.mel_dim))
            self._maps, self._mmaps, self._pid = maps, mmaps, os.getpid()   # the pid last: threads that see it see the maps
        return self._maps

    def __getstate__(self):
        """Pickled (DataLoader workers started by spawn): without the maps, reopened there."""
        return dict(vars(self), _maps=None, _mmaps=None, _pid=None)


def open_store(root: str, metadata_file: str = 'METADATA.PICKLE') -> tuple:
    """(PackedStore, None) when <root>/.packed is current with the metadata and the pattern folders;
    (None, reason) when it is out of date or damaged; (None, None) when there is none."""
    folder = store_folder(root)
    if not os.path.isfile(os.path.join(folder, MANIFEST)):
        return None, None
    manifest = read_manifest(folder)
    rebuild = 'update it with: python Pattern_Generate.py --pack'
    if manifest is None or manifest.get('format') != FORMAT or manifest.get('dtype') != DTYPE.str:
        return None, f'{folder}: unreadable or of another format; {rebuild}'
    metadata_path = os.path.join(root, metadata_file)
    if manifest['metadata_file'] != metadata_file or not os.path.isfile(metadata_path) \
            or file_digest(metadata_path) != manifest['metadata_sha256']:
        return None, f'{folder}: out of date: {metadata_path} changed since packing; {rebuild}'
    changed = [dataset for dataset, mtime in folder_mtimes(root, manifest['folders']).items()
               if mtime != manifest['folders'][dataset]]
    if changed:
        return None, (f'{folder}: out of date: patterns under {os.path.join(root, changed[0])} were added, removed '
                      f'or rewritten since packing; {rebuild}')
    row_bytes = manifest['mel_dim'] * DTYPE.itemsize
    for part in manifest['parts']:
        path = os.path.join(folder, part['name'] + '.mels')
        if not os.path.isfile(path) or os.path.getsize(path) != part['frames'] * row_bytes:
            return None, f'{path}: missing or of the wrong size; {rebuild}'
    with np.load(os.path.join(folder, manifest['index'])) as index:
        return PackedStore(folder, manifest, {name: index[name] for name in index.files}), None
