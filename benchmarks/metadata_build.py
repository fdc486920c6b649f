"""METADATA.PICKLE build time from write records, at the scale of a million patterns.

    python benchmarks/metadata_build.py [--entries 1000000]

Writes that many empty pattern files and their records (as Pattern_Generate.py's workers do) to
a temporary pattern root, then times patterns.build_metadata, which lists the folder and reads
the records without opening a single pattern.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ge2e_speaker import patterns  # noqa: E402
from ge2e_speaker.hyper_parameters import load_hyper_parameters  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--entries', type=int, default=1_000_000)
    parser.add_argument('--writers', type=int, default=16, help='record files, as from 16 worker processes')
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix='metadata_bench_')
    try:
        os.makedirs(f'{root}/VC2')
        os.makedirs(f'{root}/{patterns.RECORDS_FOLDER}')
        records = [open(f'{root}/{patterns.RECORDS_FOLDER}/worker-{index}.tsv', 'w') for index in range(args.writers)]
        for index in range(args.entries):
            speaker = f'ID{index % 6000:05d}'
            file = f'VC2/{patterns.pattern_name("VC2", speaker, f"{index:08d}", "video")}'
            open(f'{root}/{file}', 'wb').close()
            written = os.stat(f'{root}/{file}')
            records[index % args.writers].write(
                f'{file}\tVC2\t{speaker}\t{100 + index % 400}\t{written.st_size}\t{written.st_mtime_ns}\n')
        for stream in records:
            stream.close()
        sound = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml')).Sound
        started = time.perf_counter()
        metadata = patterns.build_metadata(root, sound)
        seconds = time.perf_counter() - started
        assert len(metadata['File_List']) == args.entries
        print(f'metadata build of {args.entries:,} patterns ({len(metadata["File_List_by_Speaker_Dict"])} speakers) '
              f'from {args.writers} record files: {seconds:.1f} s')
        print(f'command: python benchmarks/metadata_build.py --entries {args.entries}')
    finally:
        shutil.rmtree(root)


if __name__ == '__main__':
    main()
