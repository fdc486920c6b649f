"""Corpora on disk -> mel pattern pickles + METADATA.PICKLE (SPEC sections 1, 2 and 6).

    python Pattern_Generate.py -vctk /data/VCTK-Corpus -libri /data/LibriTTS -vc1t /data/vox1_test
    python Pattern_Generate.py -vc2 /data/vox2 --shard 3/8     # one of 8 machines
    python Pattern_Generate.py --metadata                      # merge what the shards wrote
    python Pattern_Generate.py --pack                          # metadata + packed stores (pattern_store.py)

Training corpora go to Train.Train_Pattern.Path/<Dataset>/, the VoxCeleb1 test set (-vc1t) to
Train.Eval_Pattern.Path/<Dataset>/. A rerun skips finished patterns.
"""
import argparse
import dataclasses
import multiprocessing
import os
import re
import shutil
import sys
import time
from collections import Counter

from tqdm import tqdm

from . import atomic_files, audio, augmentation, corpora, pattern_store, patterns, runtime
from .corpora import CORPORA, USER_CORPORA, CorpusError, Job
from .hyper_parameters import HyperParameterError, load_hyper_parameters


def drop_non_utf8_names(jobs: list, log=print) -> tuple:
    """(jobs whose path is UTF-8, how many were not): pattern names and records are UTF-8 text."""
    kept = []
    for job in jobs:
        try:
            job.audio_path.encode('utf-8')
        except UnicodeEncodeError:
            log(f'{audio.shown(job.audio_path)}: file name not UTF-8: rename it to make a pattern of it')
            continue
        kept.append(job)
    return kept, len(jobs) - len(kept)


def drop_same_name_sources(jobs: list, log=print) -> tuple:
    """(jobs, how many were dropped), one job per pattern file.

    One recording in several formats (p225_001.wav beside p225_001.flac) keeps the first in
    audio.AUDIO_EXTENSIONS order (.wav, .flac, .m4a, ..., then others), then in path order;
    each other one gets a line. The choice depends on the paths alone, never on worker timing.
    In the original's corpora a name is the utterance's identity (two releases of VCTK name one
    utterance alike); in users' corpora (-folder, -kaldi) two different recordings that would get one
    name (spk/a_b.wav and spk/a/b.wav) raise CorpusError before anything is written, naming both.
    """
    order = audio.AUDIO_EXTENSIONS

    def preference(job):
        extension = os.path.splitext(job.audio_path)[1].lower()
        return order.index(extension) if extension in order else len(order), job.audio_path

    chosen, clashes = {}, []
    original_tags = {dataset for dataset, _, _ in CORPORA.values()}
    for job in sorted(jobs, key=preference):
        kept = chosen.setdefault((job.root, job.pattern_file), job)
        if kept is job:
            continue
        if job.dataset not in original_tags and \
                (os.path.splitext(kept.audio_path)[0], kept.start) != (os.path.splitext(job.audio_path)[0], job.start):
            clashes.append(f'{kept.audio_path} and {job.audio_path} would both be {job.pattern_file}')
            continue
        log(f'{job.audio_path}: same recording as {kept.audio_path} ({job.pattern_file}): '
            f'that one is used ({", ".join(order)} first, then path order)')
    if clashes:
        more = f' (and {len(clashes) - 3} more)' if len(clashes) > 3 else ''
        raise CorpusError(f'two different recordings would get one pattern name: {"; ".join(clashes[:3])}{more}. '
                          f'Rename one of each pair (a pattern name joins sub-folders with "_"). Nothing was written.')
    winners = set(map(id, chosen.values()))
    return [job for job in jobs if id(job) in winners], len(jobs) - len(chosen)


def speed_perturbed(jobs: list, factors: list, train_root: str) -> list:
    """jobs plus, for each training job and factor, its speed-perturbed copy: a new speaker of
    the same dataset tag (P225 -> P225-SP090), in the seed's pattern-name format. Jobs of the
    evaluation root are never perturbed."""
    perturbed = []
    for factor in factors:
        for job in jobs:
            if job.root != train_root:
                continue
            folder, name = job.pattern_file.split('/', 1)
            dataset, speaker, rest = name.split('.', 2)
            speaker = augmentation.speed_speaker(speaker, factor)
            perturbed.append(dataclasses.replace(job, speaker=speaker, speed=factor,
                                                 pattern_file=f'{folder}/{dataset}.{speaker}.{rest}'))
    return jobs + perturbed


SPEED_HELP = ('speed perturbation of the training corpora: each factor (e.g. 0.9,1.1) makes every training speaker '
              'a new one, resampled so pitch and tempo change together (default: Augmentation.Speed, [] in the '
              "seed's file); evaluation corpora never")


def parse_speeds(text: str) -> list:
    """--speed '0.9,1.1' -> [0.9, 1.1]."""
    try:
        return augmentation.parse_speeds(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f'--speed takes factors between 0.5 and 2, e.g. 0.9,1.1 ({error})') from None


def parse_shard(text: str) -> tuple:
    """'K/N' with 0 <= K < N -> (K, N)."""
    match = re.fullmatch(r'(\d+)/(\d+)', text or '')
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise argparse.ArgumentTypeError(f'--shard takes K/N with 0 <= K < N (e.g. 0/4 ... 3/4), not {text!r}')
    return int(match[1]), int(match[2])


def trim_top_dB(sound_hp, dataset: str) -> float:
    """Sound.Trim_Top_dB of a dataset tag; Sound.Trim_Top_dB.Default for tags it does not name."""
    thresholds = vars(sound_hp.Trim_Top_dB)
    return thresholds.get(dataset, thresholds['Default'])


# Worker state: set once per process by _start_worker.
_worker = {}


def _start_worker(hp, in_pool: bool = False) -> None:
    if in_pool:
        runtime.die_with_parent()
    _worker['hp'] = hp
    _worker['records'] = {}
    _worker['limits'] = audio.one_blas_thread()   # one BLAS thread per process: processes give the parallelism


def make_pattern(job: Job) -> tuple:
    """Compute and write one pattern. Returns (job, 'done', frames) or (job, 'rejected', reason)."""
    hp = _worker['hp']
    try:
        samples = audio.load_audio(job.audio_path, hp.Sound.Sample_Rate, job.start, job.end)
        samples = augmentation.speed_perturb(samples, job.speed, hp.Sound.Sample_Rate)
        mel = audio.mel_from_signal(samples, hp.Sound, trim_top_dB(hp.Sound, job.dataset), hp.Sound.Min_Frames)
    except audio.AudioRejected as error:
        return job, 'rejected', str(error)
    except Exception as error:   # a decoder crash on one odd file must not stop a million-file run
        return job, 'rejected', f'unreadable: {type(error).__name__}: {error}'
    payload = patterns.pattern_bytes(mel, job.speaker, job.dataset)
    try:
        written = atomic_files.write_atomically(os.path.join(job.root, job.pattern_file), payload)
        if job.root not in _worker['records']:
            _worker['records'][job.root] = patterns.RecordWriter(job.root)
        _worker['records'][job.root].add(job.pattern_file, job.dataset, job.speaker, mel.shape[0], written)
    except OSError as error:             # a full disk, a quota, a folder made read-only meanwhile
        return job, 'unwritable', (error.strerror or str(error), len(payload))
    return job, 'done', mel.shape[0]


class PatternWriteError(Exception):
    """Patterns cannot be written (a full disk): str is one line naming the folder and the space."""


def write_failure(folder: str, reason: str, needed_bytes: int = None) -> str:
    """The one line for a pattern folder that takes no more files."""
    return (f'{folder}: cannot write there ({reason}; {atomic_files.space_note(folder, needed_bytes)}): the patterns '
            f'finished so far are kept and none is half-written; free space and run the same command again to go on')


def remove_temporaries(root: str, log=print) -> None:
    """Delete half-written patterns (<name>.PICKLE.tmp-<pid>) that a killed run left behind.
    Call it only while holding the root's RootLock exclusively: then no live run owns them."""
    stale = atomic_files.remove_temporaries(root, '*/*' + patterns.PATTERN_SUFFIX)
    if stale:
        log(f'{root}: removed {stale} half-written patterns left by an interrupted run')


def lock_roots(roots: list, clean_temporaries: bool, log=print) -> list:
    """A shared RootLock on each root, for a run that writes there. With clean_temporaries,
    what killed runs half-wrote is removed first, where no other run holds the lock."""
    locks = []
    for root in roots:
        lock = patterns.RootLock(root)
        if clean_temporaries and lock.exclusive():
            remove_temporaries(root, log)
        elif clean_temporaries:
            log(f'{root}: another Pattern_Generate run is writing here (it holds {lock.path}): '
                f'its unfinished files are left alone')
        lock.share(log)
        locks.append(lock)
    return locks


def generate(jobs: list, hp, workers: int, clean_temporaries: bool = True, log=print) -> Counter:
    """Write the patterns of jobs not yet done; returns counts: generated, skipped, rejected:<reason>.

    clean_temporaries: delete what an interrupted run half-wrote, where no other run is writing
    (shards on other machines may not see this machine's lock: they pass False).
    """
    roots = sorted({job.root for job in jobs})
    locks = lock_roots(roots, clean_temporaries, log)
    try:
        return _generate(jobs, roots, hp, workers, log)
    finally:
        for lock in locks:
            lock.release()


def _generate(jobs: list, roots: list, hp, workers: int, log) -> Counter:
    """generate()'s work, under the roots' locks."""
    counts = Counter()
    done = set()
    for root in roots:
        for dataset in {job.dataset for job in jobs if job.root == root}:
            os.makedirs(os.path.join(root, dataset), exist_ok=True)
        done.update((root, file) for file in patterns.list_patterns(root))
    todo = [job for job in jobs if (job.root, job.pattern_file) not in done]
    counts['skipped (already done)'] = len(jobs) - len(todo)

    if shutil.which('ffmpeg') is None:
        compressed = [job for job in todo if job.audio_path.lower().endswith(audio.FFMPEG_EXTENSIONS)]
        if compressed:
            kinds = '/'.join(sorted({os.path.splitext(job.audio_path)[1].lower() for job in compressed}))
            log(f'ffmpeg is not installed: {len(compressed)} {kinds} files cannot be decoded and are skipped '
                f'(install it, e.g. apt-get install ffmpeg, and run again)')
            counts['rejected: needs ffmpeg'] = len(compressed)
            todo = [job for job in todo if not job.audio_path.lower().endswith(audio.FFMPEG_EXTENSIONS)]

    progress = tqdm(total=len(todo), desc='Patterns', unit='file', smoothing=0.05)
    pool = None
    if workers <= 1:
        _start_worker(hp)
        results = map(make_pattern, todo)
    else:
        context = multiprocessing.get_context('fork' if sys.platform.startswith('linux') else 'spawn')
        pool = context.Pool(workers, initializer=_start_worker, initargs=(hp, True))
        results = pool.imap_unordered(make_pattern, todo, chunksize=8)
    try:
        for job, status, detail in results:
            progress.update()
            if status == 'done':
                counts['generated'] += 1
            elif status == 'unwritable':
                reason, pattern_bytes = detail
                left = len(todo) - progress.n + 1
                raise PatternWriteError(write_failure(os.path.dirname(os.path.join(job.root, job.pattern_file)),
                                                      reason, pattern_bytes * left))
            else:
                counts[f'rejected: {detail.split(":")[0]}'] += 1
                progress.write(f'{job.audio_path}: {detail}')
    except BaseException:
        if pool is not None:
            pool.terminate()
        raise
    finally:
        progress.close()
        if pool is not None:
            pool.close()
            pool.join()
        for writer in _worker.pop('records', {}).values():
            writer.close()
    return counts


def rebuild_metadata(root: str, metadata_file: str, sound_hp) -> bool:
    """--metadata: remove what killed runs half-wrote, then build the metadata, holding the
    root's lock alone. False (and one line) when a run is writing there."""
    lock = patterns.RootLock(root)
    try:
        if not lock.exclusive():
            print(f'{root}: a Pattern_Generate run is writing here (it holds {lock.path}); '
                  f'run --metadata again when it has finished', file=sys.stderr)
            return False
        remove_temporaries(root)
        patterns.build_metadata(root, sound_hp, metadata_file)
        return True
    finally:
        lock.release()


def collect_jobs(args, hp, log=print) -> tuple:
    """Jobs of every corpus named on the command line, and the Counter of entries skipped while
    reading corpus lists (each reported in one line). Raises CorpusError for a corpus that cannot
    be read at all or two corpora with one tag."""
    skipped = Counter()

    def report(where: str, reason: str) -> None:
        log(f'{where}: {reason}')
        skipped[f'skipped: {reason.split(":")[0] if reason.startswith("malformed") else "bad list entry"}'] += 1

    jobs, tags = [], {}
    for flag, path in ((flag, getattr(args, flag)) for flag in CORPORA if getattr(args, flag)):
        if not os.path.isdir(path):
            raise CorpusError(f'-{flag} {path}: no such folder')
        root = hp.Train.Eval_Pattern.Path if CORPORA[flag][2] else hp.Train.Train_Pattern.Path
        corpus = corpora.corpus_jobs(flag, path, root, args.vctk_mic)
        log(f'-{flag} {path}: {len(corpus)} audio files of {len({job.speaker for job in corpus})} speakers')
        jobs.extend(corpus)
    for flag, (reader, is_eval) in USER_CORPORA.items():
        for argument in getattr(args, flag) or []:
            tag, path = corpora.split_tag(argument)
            if not os.path.isdir(path):
                raise CorpusError(f'-{flag} {path}: no such folder')
            root = hp.Train.Eval_Pattern.Path if is_eval else hp.Train.Train_Pattern.Path
            if (root, tag) in tags or tag in {dataset for dataset, _, _ in CORPORA.values()}:
                raise CorpusError(f'-{flag} {argument}: the dataset tag {tag} is already taken'
                                  f'{f" by {tags[root, tag]}" if (root, tag) in tags else ""}; '
                                  f'name this corpus: -{flag} OTHER_TAG={path}')
            tags[root, tag] = path
            corpus = (corpora.kaldi_jobs(path, tag, root, report) if reader == 'kaldi'
                      else corpora.folder_jobs(path, tag, root))
            log(f'-{flag} {path}: {len(corpus)} utterances of {len({job.speaker for job in corpus})} speakers, '
                f'dataset tag {tag}')
            jobs.extend(corpus)
    return jobs, skipped


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Audio corpora -> mel pattern pickles and METADATA.PICKLE.')
    parser.add_argument('-hp', '--hyper_parameters', default='Hyper_Parameter.yaml', help='hyper-parameter YAML')
    parser.add_argument('-vctk', help='VCTK root (0.80 wav48/ or 0.92 wav48_silence_trimmed/)')
    parser.add_argument('-vc1', help='VoxCeleb1 root (wav/id10001/<video>/00001.wav)')
    parser.add_argument('-vc2', help='VoxCeleb2 root (aac/ or dev/aac/id00012/<video>/00001.m4a)')
    parser.add_argument('-libri', help='LibriTTS root (<subset>/<speaker>/<chapter>/*.wav)')
    parser.add_argument('-cmua', help='CMU Arctic root (cmu_us_<spk>_arctic/wav/*.wav)')
    parser.add_argument('-vc1t', help='VoxCeleb1 test set root: evaluation patterns')
    parser.add_argument('-kaldi', action='append', metavar='[TAG=]DIR',
                        help='a Kaldi data directory (wav.scp, utt2spk, segments); repeatable; tag: the folder name')
    parser.add_argument('-folder', action='append', metavar='[TAG=]DIR',
                        help='one folder per speaker, DIR/<speaker>/**/<audio>; repeatable; tag: the folder name')
    parser.add_argument('-kaldit', action='append', metavar='[TAG=]DIR', help='as -kaldi, to the evaluation patterns')
    parser.add_argument('-foldert', action='append', metavar='[TAG=]DIR', help='as -folder, to the evaluation patterns')
    parser.add_argument('-mw', '--max_workers', type=int, default=os.cpu_count(), help='worker processes (default: all cores)')
    parser.add_argument('--shard', type=parse_shard, help='K/N: do only the K-th of N parts (0-based); merge later with --metadata')
    parser.add_argument('--metadata', action='store_true', help='only (re)build METADATA.PICKLE from the patterns on disk')
    parser.add_argument('--pack', action='store_true', help='also build or update the packed store of each pattern root '
                        '(for training); with --shard K/N only its K-th share, merged by a --pack without --shard')
    parser.add_argument('--speed', type=parse_speeds, metavar='F1,F2', help=SPEED_HELP)
    parser.add_argument('--vctk_mic', default='mic1', help='VCTK 0.92 microphone to take (default mic1)')
    args = parser.parse_args(argv)

    try:
        hp = load_hyper_parameters(args.hyper_parameters)
    except HyperParameterError as error:
        print(error, file=sys.stderr)
        return 2
    given = [flag for flag in list(CORPORA) + list(USER_CORPORA) if getattr(args, flag)]
    if not given and not args.metadata and not args.pack:
        parser.error('name at least one corpus (-vctk, -vc1, -vc2, -libri, -cmua, -vc1t, -kaldi, -folder, '
                     '-kaldit, -foldert), --metadata or --pack')
    if args.pack and args.shard:
        if given or args.metadata:
            parser.error('--pack --shard K/N packs a share of finished patterns: run it alone, after --metadata')
        return pattern_store.pack_roots(hp, args.shard)

    started = time.time()
    try:
        jobs, skipped = collect_jobs(args, hp)
    except (CorpusError, OSError) as error:
        print(error, file=sys.stderr)
        return 2
    jobs, non_utf8 = drop_non_utf8_names(jobs)
    try:
        jobs, same_name = drop_same_name_sources(jobs)
    except CorpusError as error:
        print(error, file=sys.stderr)
        return 2
    speeds = args.speed if args.speed is not None else augmentation.parse_speeds(hp.Augmentation.Speed)
    if speeds:
        jobs = speed_perturbed(jobs, speeds, hp.Train.Train_Pattern.Path)
        print(f'speed perturbation {", ".join(f"{factor:g}" for factor in speeds)}: {len(jobs)} training and '
              f'evaluation files in all, each factor a new speaker ({augmentation.speed_speaker("<speaker>", speeds[0])})')
    rejected = Counter({'rejected: file name not UTF-8': non_utf8, 'rejected: same recording': same_name})
    if args.shard:
        shard, shards = args.shard
        jobs = jobs[shard::shards]
        print(f'shard {shard}/{shards}: {len(jobs)} files')
    if jobs or skipped or any(rejected.values()):
        try:
            counts = generate(jobs, hp, args.max_workers, clean_temporaries=not args.shard) + skipped + rejected
        except PatternWriteError as error:
            print(f'Pattern_Generate.py: {error}', file=sys.stderr)
            return 1
        elapsed = time.time() - started
        print(f'{counts["generated"]} generated, {counts["skipped (already done)"]} skipped (already done), '
              f'{sum(value for key, value in counts.items() if key.startswith("rejected"))} rejected, '
              f'{sum(skipped.values())} list entries skipped '
              f'in {elapsed:.1f} s ({counts["generated"] / max(elapsed, 1e-9):.1f} files/s)')
        for key in sorted(key for key in counts if key.startswith(('rejected', 'skipped:')) and counts[key]):
            print(f'  {key}: {counts[key]}')

    if args.shard and not args.metadata:
        print(f'shard done; when every shard has finished, merge with: python Pattern_Generate.py -hp {args.hyper_parameters} --metadata')
        return 0
    roots = sorted({job.root for job in jobs}) if given else [hp.Train.Train_Pattern.Path, hp.Train.Eval_Pattern.Path]
    built = 0
    for root, metadata_file in ((hp.Train.Train_Pattern.Path, hp.Train.Train_Pattern.Metadata_File),
                                (hp.Train.Eval_Pattern.Path, hp.Train.Eval_Pattern.Metadata_File)):
        if root in roots and os.path.isdir(root):
            try:
                if not args.metadata:
                    patterns.build_metadata(root, hp.Sound, metadata_file)
                elif not rebuild_metadata(root, metadata_file, hp.Sound):
                    return 1
            except OSError as error:
                print(f'Pattern_Generate.py: {root}: cannot write {metadata_file} there ({error.strerror or error}; '
                      f'{atomic_files.space_note(root)}): the patterns are kept and the earlier metadata is whole; '
                      f'free space and run again with --metadata', file=sys.stderr)
                return 1
            built += 1
    if not built:
        print(f'no pattern folder at {" or ".join(roots)}: nothing to build metadata from '
              f'(generate patterns first, e.g. python Pattern_Generate.py -vctk DIR)', file=sys.stderr)
        return 1
    return pattern_store.pack_roots(hp) if args.pack else 0


if __name__ == '__main__':
    sys.exit(main())
