"""One-command device check: training speed, data wait (pickles vs packed store), inference speed.

    bash benchmarks/gpu_check.sh                      # CUDA: 64 x 15 batches, a few minutes
    bash benchmarks/gpu_check.sh --device cpu --quick # tiny sizes (the tests run this)

Makes its own synthetic patterns (fixtures.patterns.write_pattern_corpus, 200-800 frames) and packs them
(pattern_store.pack), and voice-like audio (inference.numpy_corpus), in a temporary folder; needs no
network. Then, in this process:
  training  train.Trainer steps at Speaker x Pattern_per_Speaker, float32 and Mixed_Precision, each
            reading pickles and the packed store: steps/s and the share of the time spent waiting
            for the next batch (train_step.timed_steps). "workers" is Train.Num_Workers: DataLoader
            processes for the pickles, batches.py's threads (batches copied to the GPU) for the store
  inference embedding.SpeakerEncoder.embed_files on the audio (a randomly initialised encoder: the
            speed does not depend on the weights): utterances/s
Prints a table (and writes it to $OUT/gpu_check.txt when OUT is set).
"""
import argparse
import os
import platform
import sys
import tempfile
import time
from types import SimpleNamespace

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from ge2e_speaker import pattern_store, train  # noqa: E402
from ge2e_speaker.hyper_parameters import load_hyper_parameters  # noqa: E402
from inference import numpy_corpus  # noqa: E402
from packed_loader import cpu_name  # noqa: E402
from fixtures.patterns import write_pattern_corpus  # noqa: E402
from train_step import timed_steps  # noqa: E402

SIZES = {   # full: the project's defaults; quick: seconds on a CPU
    'full': dict(speakers=64, utterances=15, corpus_speakers=128, corpus_utterances=20, steps=20, warmup=3,
                 audio_files=400, lstm=256, embedding=256, workers=(2, 8)),
    'quick': dict(speakers=4, utterances=3, corpus_speakers=8, corpus_utterances=4, steps=2, warmup=1,
                  audio_files=6, lstm=32, embedding=32, workers=(0,)),
}


def environment(device: torch.device) -> str:
    cuda = torch.version.cuda or 'none (a CPU build)'
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else cpu_name()
    return (f'torch {torch.__version__}, CUDA {cuda}; device {device}: {name}; CPU {cpu_name()}, '
            f'{os.cpu_count()} cores; Python {platform.python_version()}')


def training_rows(hp, size: dict, folder: str, device: torch.device) -> list:
    """[(loader workers, precision, source, steps/s, data-wait share)] over Trainer.train_step."""
    rows = []
    args = SimpleNamespace(steps=size['steps'], warmup=size['warmup'], speakers=size['speakers'], utterances=size['utterances'])
    for workers, mixed, packed in ((w, m, p) for w in size['workers'] for m in (False, True) for p in (False, True)):
        hp.Train.Mixed_Precision, hp.Train.Use_Packed_Store, hp.Train.Num_Workers = mixed, packed, workers
        hp.Checkpoint_Path = os.path.join(folder, 'checkpoints')
        hp.Log_Path = os.path.join(folder, 'log')
        trainer = train.Trainer(hp, log=lambda message: None)
        assert (trainer.train_dataset.store is not None) == packed
        result = timed_steps(args, lambda: iter(trainer.train_loader),
                             lambda batch, step=trainer.train_step: step(getattr(batch, 'mels', batch)),   # store: a tensor
                             trainer.device)
        trainer.writer.close()
        precision = f'{str(trainer.autocast_dtype)[6:]} mixed' if trainer.mixed_precision else 'float32'
        del trainer
        rows.append((workers, precision, 'packed store' if packed else 'pickles',
                     result['utterances_per_second'] / (size['speakers'] * size['utterances']), result['wait_share']))
    return rows


def ceiling_rows(hp, size: dict, folder: str, device: torch.device) -> list:
    """What bounds a step: [(what, per second)] for the loader alone (batches/s, no model) and the
    training step alone (steps/s on one batch already on the device, no loader)."""
    rows = []
    hp.Checkpoint_Path, hp.Log_Path = os.path.join(folder, 'checkpoints'), os.path.join(folder, 'log')
    for workers, packed in ((w, p) for w in size['workers'] for p in (False, True)):
        hp.Train.Mixed_Precision, hp.Train.Use_Packed_Store, hp.Train.Num_Workers = False, packed, workers
        trainer = train.Trainer(hp, log=lambda message: None)
        batches = iter(trainer.train_loader)
        started, count = None, 0
        while count < size['warmup'] + size['steps']:
            if count == size['warmup']:
                started = time.perf_counter()
            if next(batches, None) is None:       # a new epoch
                batches = iter(trainer.train_loader)
                continue
            count += 1
        rate = size['steps'] / (time.perf_counter() - started)
        rows.append((f'loader alone, {workers} workers, {"packed store" if packed else "pickles"}', rate, 'batches/s'))
        trainer.writer.close()
        del batches, trainer
    for mixed in (False, True):
        hp.Train.Mixed_Precision, hp.Train.Num_Workers = mixed, 0
        trainer = train.Trainer(hp, log=lambda message: None)
        batch = next(iter(trainer.train_loader))
        mels = getattr(batch, 'mels', batch).to(device)                  # store: a tensor; pickles: TrainingBatch
        for _ in range(size['warmup']):
            trainer.train_step(mels)
        synchronize = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
        synchronize()
        started = time.perf_counter()
        for _ in range(size['steps']):
            trainer.train_step(mels)
        synchronize()
        rows.append((f'training step alone, {"mixed precision" if trainer.mixed_precision else "float32"}',
                     size['steps'] / (time.perf_counter() - started), 'steps/s'))
        trainer.writer.close()
        del trainer
    return rows


def inference_rate(hp, audio: list, device: torch.device, workers) -> float:
    from ge2e_speaker.embedding import SpeakerEncoder
    from ge2e_speaker.modules import Encoder
    encoder = SpeakerEncoder(Encoder.from_hyper_parameters(hp).eval(), hp, device=str(device), workers=workers)
    encoder.embed_files(audio[:2])                               # warm-up: cuDNN plans, workers
    if device.type == 'cuda':
        torch.cuda.synchronize()
    started = time.perf_counter()
    encoder.embed_files(audio)
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return len(audio) / (time.perf_counter() - started)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda', help="cuda (default), cuda:1 or cpu")
    parser.add_argument('--quick', action='store_true', help='tiny sizes: a check of the check, seconds on a CPU')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print(f'gpu_check: torch {torch.__version__} (CUDA build: {torch.version.cuda or "none, a CPU build"}) sees no '
              f'CUDA device; install a CUDA build of torch and check nvidia-smi, or run the CPU path with --device cpu',
              file=sys.stderr)
        return 2
    size = SIZES['quick' if args.quick else 'full']
    lines = [f'gpu_check ({"quick" if args.quick else "full"}): {environment(device)}']
    print(lines[0], flush=True)
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    hp.Device = '-1' if device.type == 'cpu' else str(device.index or 0)
    hp.Encoder.LSTM.Sizes, hp.Encoder.Embedding_Size = size['lstm'], size['embedding']
    hp.Train.Batch.Train.Speaker, hp.Train.Batch.Train.Pattern_per_Speaker = size['speakers'], size['utterances']
    with tempfile.TemporaryDirectory(prefix='gpu_check_') as folder:
        started = time.perf_counter()
        hp.Train.Train_Pattern.Path = os.path.join(folder, 'patterns')
        hp.Train.Eval_Pattern.Path = os.path.join(folder, 'no-evaluation')
        write_pattern_corpus(hp.Train.Train_Pattern.Path, size['corpus_speakers'], size['corpus_utterances'],
                             frames=(200, 800), sound_hp=hp.Sound)
        pattern_store.pack(hp.Train.Train_Pattern.Path, log=lambda message: None)
        audio = numpy_corpus(os.path.join(folder, 'audio'), size['audio_files'])
        print(f'synthetic data written in {time.perf_counter() - started:.0f} s', flush=True)
        rows = training_rows(hp, size, folder, device)
        lines.append(f'training, {size["speakers"]} x {size["utterances"]} utterances of '
                     f'{hp.Train.Frame_Length.Min}-{hp.Train.Frame_Length.Max} frames, '
                     f'encoder {hp.Encoder.LSTM.Stacks} x {size["lstm"]}:')
        lines.append(f'  {"workers":>7s}  {"precision":16s} {"data source":14s} {"steps/s":>8s} {"data wait":>10s}')
        lines += [f'  {workers:7d}  {precision:16s} {source:14s} {rate:8.2f} {100 * wait:9.1f}%'
                  for workers, precision, source, rate, wait in rows]
        lines.append('what bounds a step:')
        lines += [f'  {what:44s} {rate:8.2f} {unit}' for what, rate, unit in ceiling_rows(hp, size, folder, device)]
        rate = inference_rate(hp, audio, device, 0 if args.quick else None)
        lines.append(f'inference: {rate:.1f} utterances/s ({len(audio)} files of 2-6 s at 16 kHz, multi-slice, '
                     f'embedding.SpeakerEncoder.embed_files, float32)')
    lines.append(f'command: bash benchmarks/gpu_check.sh --device {args.device}' + (' --quick' if args.quick else ''))
    report = '\n'.join(lines)
    print('\n' + report)
    if os.environ.get('OUT'):
        os.makedirs(os.environ['OUT'], exist_ok=True)
        with open(os.path.join(os.environ['OUT'], 'gpu_check.txt'), 'w', encoding='utf-8') as stream:
            stream.write(report + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
