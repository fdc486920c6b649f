"""Training and inference speed on a quiet machine and beside a busy core, per thread and worker count.

    python benchmarks/busy_core.py                                  # every part, native kernels
    python benchmarks/busy_core.py --avx2                           # the same with the AVX2 stand-in
    python benchmarks/busy_core.py --parts demo --threads 1 2 --workers 0 1 --wait-policy default libgomp

Parts (each setting in a fresh child process, on the same data):

  demo       Trainer steps with the demo's settings (demo_corpus/Hyper_Parameter_Demo.yaml: 3 x 256
             LSTM, 16 x 8 on 64-96 frames) on a synthetic pattern corpus;
  full       Trainer steps with Hyper_Parameter.yaml's encoder and crops (140-180 frames), 16 x 10
             utterances as benchmarks/train_step.py;
  inference  SpeakerEncoder.embed_files on eSpeak NG files (benchmarks/inference.py's corpus), the
             encoder's torch threads and the decoding workers as Inference.py's --threads/--workers.

Every setting runs twice: on the quiet machine, then beside a CPU-bound process that this script
starts (one busy-looping Python process: one core of the machine taken) and stops. Torch threads
are set with OMP_NUM_THREADS, as a user does on a shared machine. `--wait-policy` compares how idle
OpenMP threads wait: 'default' is this project's (ge2e_speaker sets GOMP_SPINCOUNT=1000 before torch
loads: cpu_defaults.py), 'libgomp' libgomp's own (300,000 spins before a thread sleeps), 'passive'
OMP_WAIT_POLICY=PASSIVE, 'spinN' GOMP_SPINCOUNT=N. The table gives each figure quiet and busy and the busy/quiet ratio;
a ratio under 0.5 is what issue 18 calls a defect. Only figures of one run compare.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

from steady_state import FORCED_AVX2, cpu_description  # noqa: E402

PART_SETTINGS = {'demo': os.path.join(ROOT, 'demo_corpus', 'Hyper_Parameter_Demo.yaml'),
                 'full': os.path.join(ROOT, 'Hyper_Parameter.yaml')}
PART_UNITS = {'demo': 'steps/s', 'full': 'steps/s', 'inference': 'files/s'}


def wait_policy(text: str) -> str:
    if text in ('default', 'libgomp', 'passive') or (text.startswith('spin') and text[len('spin'):].isdigit()):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: give default, passive or spinN (N a whole number)")


def busy_process() -> subprocess.Popen:
    """A process that keeps one core busy until it is killed."""
    return subprocess.Popen([sys.executable, '-c', 'while True: pass'])


# ------------------------------------------------------------------------------ children

def train_child(part: str, corpus: str, output: str, workers: int, steps: int) -> dict:
    """Trainer steps per second after 2 warm-up steps, timed by train_step.py's timed_steps (the
    clock covers waiting for batches)."""
    import ge2e_speaker  # noqa: F401  (first: its OpenMP setting precedes torch, as in Train.py)
    import torch
    from ge2e_speaker import runtime, train
    from ge2e_speaker.hyper_parameters import load_hyper_parameters
    from train_step import timed_steps
    runtime.configure_cpu_arithmetic()
    torch.manual_seed(0)
    hp = load_hyper_parameters(PART_SETTINGS[part])
    if part == 'full':
        hp.Train.Batch.Train.Speaker, hp.Train.Batch.Train.Pattern_per_Speaker = 16, 10
    hp.Train.Train_Pattern.Path = corpus
    hp.Train.Eval_Pattern.Path = os.path.join(output, 'no-evaluation')
    hp.Checkpoint_Path, hp.Log_Path = os.path.join(output, 'checkpoints'), os.path.join(output, 'log')
    hp.Device, hp.Train.Mixed_Precision, hp.Train.Num_Workers = '-1', False, workers
    trainer = train.Trainer(hp, log=lambda message: None)
    batch_hp = hp.Train.Batch.Train
    timing = argparse.Namespace(warmup=2, steps=steps, speakers=batch_hp.Speaker, utterances=batch_hp.Pattern_per_Speaker)
    result = timed_steps(timing, lambda: iter(trainer.train_loader),
                         lambda batch: trainer.train_step(getattr(batch, 'mels', batch)), trainer.device)
    trainer.writer.close()
    return {'rate': steps / result['seconds']}


def inference_child(paths_file: str, workers: int) -> dict:
    """Files per second through SpeakerEncoder.embed_files after a warm-up, timed by
    inference.py's time_project at the OMP_NUM_THREADS run_child set."""
    import ge2e_speaker  # noqa: F401  (first: its OpenMP setting precedes torch, as in Inference.py)
    from inference import time_project
    with open(paths_file, encoding='utf-8') as stream:
        paths = stream.read().split('\n')[:-1]
    return time_project(paths, int(os.environ['OMP_NUM_THREADS']), workers, 'float32', None)


def run_child(args, part: str, threads: int, workers: int, policy: str, busy: bool, data: dict) -> dict:
    environment = dict(os.environ, OMP_NUM_THREADS=str(threads), **(FORCED_AVX2 if args.avx2 else {}))
    if policy == 'passive':
        environment['OMP_WAIT_POLICY'] = 'PASSIVE'
    elif policy == 'libgomp':
        environment['GOMP_SPINCOUNT'] = '300000'
    elif policy.startswith('spin'):
        environment['GOMP_SPINCOUNT'] = policy[len('spin'):]
    command = [sys.executable, os.path.abspath(__file__), '--child', part, '--child-workers', str(workers),
               '--steps', str(args.steps), '--child-data', data[part], '--child-output',
               tempfile.mkdtemp(dir=data['folder'])]
    load = busy_process() if busy else None
    try:
        if load:
            time.sleep(0.5)                   # the busy process is running before the child starts
        process = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
    finally:
        if load:
            load.kill()
            load.wait()
    if process.returncode != 0:
        print(f'  {part} failed: {(process.stderr.strip().splitlines() or ["?"])[-1]}', flush=True)
        return {'rate': float('nan')}
    return json.loads(process.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------ the sweep

def prepare(args, folder: str) -> dict:
    data = {'folder': folder}
    if {'demo', 'full'} & set(args.parts):
        from fixtures.patterns import write_pattern_corpus
        data['demo'] = data['full'] = os.path.join(folder, 'patterns')
        write_pattern_corpus(data['demo'], 48, 20)
    if 'inference' in args.parts:
        from inference import corpus
        paths, kind = corpus(args.audio or os.path.join(folder, 'audio'), args.files)
        data['inference'] = os.path.join(folder, 'paths.txt')
        with open(data['inference'], 'w', encoding='utf-8') as stream:
            stream.write(''.join(f'{path}\n' for path in paths))
        print(f'inference: {len(paths)} files ({kind})', flush=True)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--parts', nargs='+', default=['demo', 'full', 'inference'], choices=list(PART_UNITS))
    parser.add_argument('--threads', nargs='+', type=int, default=[1, 2], help='torch threads (OMP_NUM_THREADS)')
    parser.add_argument('--workers', nargs='+', type=int, default=[0, 1],
                        help='loader workers (training) or decoding workers (inference)')
    parser.add_argument('--wait-policy', nargs='+', default=['default'], type=wait_policy,
                        help="how OpenMP threads wait: 'default' (this project's: cpu_defaults.OPENMP_SPIN_COUNT "
                             "unless GOMP_SPINCOUNT is set), 'libgomp' (its own default, GOMP_SPINCOUNT=300000), "
                             "'passive' (OMP_WAIT_POLICY=PASSIVE), 'spinN' (GOMP_SPINCOUNT=N)")
    parser.add_argument('--steps', type=int, default=8, help='timed training steps per setting')
    parser.add_argument('--files', type=int, default=120, help='inference files per setting')
    parser.add_argument('--audio', help='folder of the inference audio (kept and reused); default a temporary one')
    parser.add_argument('--avx2', action='store_true', help='children take the AVX2 code paths (the stand-in)')
    parser.add_argument('--child', choices=list(PART_UNITS), help=argparse.SUPPRESS)
    parser.add_argument('--child-workers', type=int, help=argparse.SUPPRESS)
    parser.add_argument('--child-data', help=argparse.SUPPRESS)
    parser.add_argument('--child-output', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = (inference_child(args.child_data, args.child_workers) if args.child == 'inference' else
                  train_child(args.child, args.child_data, args.child_output, args.child_workers, args.steps))
        print(json.dumps(result))
        return
    folder = tempfile.mkdtemp(prefix='busy_core_bench_')
    try:
        data = prepare(args, folder)
        rows = []
        print(f'{"part":10s} {"policy":8s} {"threads":>7s} {"workers":>7s} {"quiet":>8s} {"busy":>8s} {"busy/quiet":>10s}')
        for part in args.parts:
            for policy in args.wait_policy:
                for threads in args.threads:
                    for workers in args.workers:
                        quiet = run_child(args, part, threads, workers, policy, False, data)['rate']
                        busy = run_child(args, part, threads, workers, policy, True, data)['rate']
                        rows.append((part, policy, threads, workers, quiet, busy))
                        print(f'{part:10s} {policy:8s} {threads:7d} {workers:7d} {quiet:8.2f} {busy:8.2f} '
                              f'{busy / quiet:10.2f}  {PART_UNITS[part]}', flush=True)
        print()
        for part in args.parts:
            best_quiet = max(row[4] for row in rows if row[0] == part)
            print(f'{part}: best quiet {best_quiet:.2f} {PART_UNITS[part]}; settings whose busy figure is at least '
                  'half of it: ' + (', '.join(f'{row[2]} thread(s) {row[3]} worker(s) {row[1]}'
                                              for row in rows if row[0] == part and row[5] >= best_quiet / 2) or 'none'))
        print('command: python benchmarks/busy_core.py ' + ' '.join(
            [f'--parts {" ".join(args.parts)}', f'--threads {" ".join(map(str, args.threads))}',
             f'--workers {" ".join(map(str, args.workers))}', f'--wait-policy {" ".join(args.wait_policy)}',
             f'--steps {args.steps}', f'--files {args.files}'] + (['--avx2'] if args.avx2 else [])))
        print(f'CPU: {cpu_description(dict(os.environ, **FORCED_AVX2) if args.avx2 else None)}')
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == '__main__':
    main()
