"""Training step speed: a seed-style step vs this project's step, side by side.

    python benchmarks/train_step.py [--speakers 16] [--utterances 10] [--steps 12] [--rounds 2] [--num_workers 2]

Writes a synthetic pattern corpus (the seed's pattern format, through Patterns' helpers) to a
temporary folder, then runs, in alternating child processes on the same corpus and cores:

  seed  the seed's step as it was: a DataLoader (--num_workers workers, 2 in the original's YAML, rebuilt every epoch) that unpickles
        one file per utterance and crops with numpy's global RNG; a batch-first LSTM encoder;
        the GE2E loss built from [N * M, N, D] expanded copies, inclusive centroid, w and b
        fixed; RAdam; clipping; the running loss kept as a tensor with its graph.
  ours  train.Trainer: Datasets' loader and Trainer.train_step, as Train.py runs them, in
        float32 (the default), and again with Train.Mixed_Precision (bfloat16 autocast on a CPU
        with native bfloat16, float16 on CUDA), with Train.Num_Workers = --num_workers as an
        original YAML gives it (or 'auto', where the seed's DataLoader takes 2).

Each child reports utterances/s over the timed steps (after warm-up), the share of the step
time spent waiting for the next batch, and its peak resident memory (ru_maxrss of the main
process and of its DataLoader workers). Only ratios within one run mean anything: the machine
is shared and machines differ.
"""
import argparse
import json
import os
import pickle
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ge2e_speaker import patterns  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))
from steady_state import cpu_description  # noqa: E402
from ge2e_speaker.hyper_parameters import load_hyper_parameters  # noqa: E402
from fixtures.patterns import write_pattern_corpus  # noqa: E402


# ------------------------------------------------------------------------------ the seed's step

class SeedDataset:
    """The seed's training dataset: speakers with enough patterns; random.sample of their files;
    plain pickle.load of one file per utterance (the seed joined Path/<Dataset>/<file>)."""

    def __init__(self, root: str, utterances: int):
        metadata = patterns.load_pickle(os.path.join(root, 'METADATA.PICKLE'))
        self.root, self.utterances = root, utterances
        self.by_speaker = {key: files for key, files in metadata['File_List_by_Speaker_Dict'].items()
                           if len(files) >= utterances}
        self.keys = list(self.by_speaker)

    def __getitem__(self, index):
        mels = []
        for file in random.sample(self.by_speaker[self.keys[index]], self.utterances):
            with open(os.path.join(self.root, file), 'rb') as stream:
                mels.append(pickle.load(stream)['Mel'])
        return mels

    def __len__(self):
        return len(self.keys)


def seed_correction(mel, length):
    """The seed's crop (numpy's global RNG, the last offset never drawn) or symmetric reflect pad."""
    if mel.shape[0] > length:
        offset = np.random.randint(0, mel.shape[0] - length)
        return mel[offset:offset + length]
    pad = (length - mel.shape[0]) / 2
    return np.pad(mel, [[int(np.floor(pad)), int(np.ceil(pad))], [0, 0]], mode='reflect')


class SeedCollater:
    def __init__(self, min_frames, max_frames):
        self.min_frames, self.max_frames = min_frames, max_frames

    def __call__(self, batch):
        import torch
        length = np.random.randint(self.min_frames, self.max_frames + 1)
        mels = [seed_correction(mel, length) for speaker_mels in batch for mel in speaker_mels]
        return torch.FloatTensor(np.stack(mels, axis=0)).transpose(2, 1)     # [N * M, mel_dim, frames]


def seed_modules(mel_dim, lstm_size, stacks, embedding_size):
    """The seed's encoder (batch-first LSTMs, flattened every call) and GE2E loss."""
    import torch

    class SeedEncoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer_Dict = torch.nn.ModuleDict()
            self.layer_Dict['Prenet'] = torch.nn.Linear(mel_dim, lstm_size)
            for index in range(stacks):
                self.layer_Dict[f'LSTM_{index}'] = torch.nn.LSTM(lstm_size, lstm_size, batch_first=True)
            self.layer_Dict['Linear'] = torch.nn.Linear(lstm_size, embedding_size)

        def forward(self, mels):
            for index in range(stacks):
                self.layer_Dict[f'LSTM_{index}'].flatten_parameters()
            x = self.layer_Dict['Prenet'](mels.transpose(2, 1))                # [B, T, H]
            for index in range(stacks):
                x = self.layer_Dict[f'LSTM_{index}'](x)[0] + (x if index < stacks - 1 else 0)
            return self.layer_Dict['Linear'](x[:, -1, :])

    class SeedLoss(torch.nn.Module):
        """Inclusive centroids; every utterance compared with every centroid through expanded
        [N * M, N, D] copies; w and b parameters that no optimiser sees."""

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.tensor(10.0))
            self.bias = torch.nn.Parameter(torch.tensor(-5.0))
            self.cosine = torch.nn.CosineSimilarity(dim=2)
            self.cross_entropy = torch.nn.CrossEntropyLoss()

        def forward(self, embeddings, utterances):
            embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=1)
            x = embeddings.view(embeddings.size(0) // utterances, utterances, -1)           # [N, M, D]
            own = self.cosine(x, x.sum(dim=1, keepdim=True).expand(-1, x.size(1), -1))
            own = self.weight * own + self.bias                                              # [N, M]
            mask = (1.0 - torch.eye(x.size(0)).to(x.device).unsqueeze(1).expand(-1, x.size(1), -1)).bool()
            others = self.cosine(embeddings.unsqueeze(1).expand(-1, x.size(0), -1),
                                 x.mean(dim=1).unsqueeze(0).expand(embeddings.size(0), -1, -1))
            others = (self.weight * others + self.bias).view(x.size(0), x.size(1), x.size(0))
            others = torch.masked_select(others, mask).view(x.size(0), x.size(1), x.size(0) - 1)
            logits = torch.cat([own.unsqueeze(2), others], dim=2).view(embeddings.size(0), -1)
            return self.cross_entropy(logits, torch.zeros(embeddings.size(0), dtype=torch.long).to(x.device))

    return SeedEncoder(), SeedLoss()


def seed_child(args, hp) -> dict:
    import torch
    warnings.filterwarnings('ignore', message='.*pin_memory.*')
    train = hp.Train
    device = torch.device('cpu' if args.device == '-1' or not torch.cuda.is_available() else f'cuda:{args.device}')
    encoder, loss = seed_modules(hp.Sound.Mel_Dim, hp.Encoder.LSTM.Sizes, hp.Encoder.LSTM.Stacks, hp.Encoder.Embedding_Size)
    encoder, loss = encoder.to(device), loss.to(device)
    optimizer = torch.optim.RAdam(encoder.parameters(), lr=train.Learning_Rate.Initial, eps=train.Learning_Rate.Epsilon)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, train.Learning_Rate.Decay_Step, train.Learning_Rate.Decay_Rate)
    loader = torch.utils.data.DataLoader(
        SeedDataset(args.corpus, args.utterances), shuffle=True, batch_size=args.speakers,
        num_workers=2 if args.num_workers == 'auto' else int(args.num_workers),
        collate_fn=SeedCollater(train.Frame_Length.Min, train.Frame_Length.Max), pin_memory=True)
    running_loss = 0.0

    def step(mels):
        nonlocal running_loss
        value = loss(encoder(mels.to(device)), args.utterances)
        optimizer.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_(encoder.parameters(), train.Gradient_Norm)
        optimizer.step()
        scheduler.step()
        running_loss += value            # the seed's running loss: a tensor with its graph

    return timed_steps(args, lambda: iter(loader), step, device)


def ours_child(args, hp) -> dict:
    from ge2e_speaker import train
    hp.Train.Batch.Train.Speaker, hp.Train.Batch.Train.Pattern_per_Speaker = args.speakers, args.utterances
    hp.Train.Train_Pattern.Path = args.corpus
    hp.Train.Eval_Pattern.Path = os.path.join(args.output, 'no-evaluation')
    hp.Checkpoint_Path, hp.Log_Path = os.path.join(args.output, 'checkpoints'), os.path.join(args.output, 'log')
    hp.Device = args.device
    hp.Train.Mixed_Precision = args.variant == 'mixed'
    hp.Train.Num_Workers = args.num_workers if args.num_workers == 'auto' else int(args.num_workers)
    trainer = train.Trainer(hp, log=lambda message: None)
    result = timed_steps(args, lambda: iter(trainer.train_loader),
                         lambda batch, step=trainer.train_step: step(getattr(batch, 'mels', batch)),   # store: a tensor
                         trainer.device)
    trainer.writer.close()
    del trainer.train_loader                 # shuts the persistent workers down, so that their peak counts
    return result


def timed_steps(args, new_epoch, step, device) -> dict:
    """Runs warm-up steps, then args.steps timed steps; the clock covers waiting for batches."""
    import gc
    import torch
    synchronize = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    batches, done, waited, started = new_epoch(), 0, 0.0, None
    while done < args.warmup + args.steps:
        if done == args.warmup:
            synchronize()
            waited, started = 0.0, time.perf_counter()
        wait_started = time.perf_counter()
        mels = next(batches, None)
        if mels is None:
            batches = new_epoch()
            mels = next(batches)
        waited += time.perf_counter() - wait_started
        step(mels)
        done += 1
    synchronize()
    seconds = time.perf_counter() - started
    del batches
    gc.collect()
    return {'utterances_per_second': args.steps * args.speakers * args.utterances / seconds,
            'wait_share': waited / seconds, 'seconds': seconds,
            'gpu_peak_mib': torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == 'cuda' else 0.0}


def child(args) -> None:
    import torch
    if args.variant != 'seed':
        from ge2e_speaker import runtime
        runtime.configure_cpu_arithmetic()      # as Train.py does, before any parallel work
    if args.threads:
        torch.set_num_threads(args.threads)
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    torch.manual_seed(0)
    result = (seed_child if args.variant == 'seed' else ours_child)(args, hp)
    result['main_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result['worker_rss_mib'] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--speakers', type=int, default=16, help='speakers per batch')
    parser.add_argument('--utterances', type=int, default=10, help='utterances per speaker')
    parser.add_argument('--steps', type=int, default=12, help='timed steps per round and variant')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--rounds', type=int, default=2, help='alternating rounds (seed, ours, seed, ours, ...)')
    parser.add_argument('--corpus_speakers', type=int, default=128)
    parser.add_argument('--corpus_utterances', type=int, default=20)
    parser.add_argument('--threads', type=int, default=0, help='torch threads in both (0: torch default)')
    parser.add_argument('--num_workers', default='2', help="Train.Num_Workers of both steps (2: the original's; 'auto')")
    parser.add_argument('--device', default='-1', help="the Device key for our step ('-1': CPU)")
    parser.add_argument('--variant', choices=('seed', 'ours', 'mixed'), help=argparse.SUPPRESS)
    parser.add_argument('--corpus', help=argparse.SUPPRESS)
    parser.add_argument('--output', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return child(args)
    folder = tempfile.mkdtemp(prefix='train_step_bench_')
    try:
        corpus = os.path.join(folder, 'patterns')
        started = time.perf_counter()
        write_pattern_corpus(corpus, args.corpus_speakers, args.corpus_utterances)
        print(f'corpus: {args.corpus_speakers} speakers x {args.corpus_utterances} patterns of 100-300 frames '
              f'({time.perf_counter() - started:.1f} s to write)', flush=True)
        results = {'seed': [], 'ours': [], 'mixed': []}
        for round_index in range(args.rounds):
            for variant in results:
                command = [sys.executable, os.path.abspath(__file__), '--variant', variant, '--corpus', corpus,
                           '--output', os.path.join(folder, f'{variant}{round_index}')] + [
                    f'--{key}={getattr(args, key)}' for key in ('speakers', 'utterances', 'steps', 'warmup', 'threads', 'num_workers', 'device')]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                results[variant].append(json.loads(output.strip().splitlines()[-1]))
            rates = {variant: runs[-1]['utterances_per_second'] for variant, runs in results.items()}
            print(f'round {round_index + 1}: seed-style {rates["seed"]:.1f}, ours {rates["ours"]:.1f} '
                  f'({rates["ours"] / rates["seed"]:.2f}x), ours with Mixed_Precision {rates["mixed"]:.1f} '
                  f'({rates["mixed"] / rates["seed"]:.2f}x) utterances/s', flush=True)
        frames = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml')).Train.Frame_Length
        print(f'\n{args.speakers} speakers x {args.utterances} utterances, {frames.Min}-{frames.Max} frames; '
              f'{args.rounds} rounds x {args.steps} timed steps per variant; torch threads: {args.threads or "default"}; '
              f'Mixed_Precision: {"bfloat16" if args.device == "-1" else "float16"} autocast')
        names = {'seed': 'seed-style step', 'ours': 'this project', 'mixed': 'this project, Mixed_Precision'}
        seed_rate = None
        for variant, runs in results.items():
            seconds = sum(run['seconds'] for run in runs)
            rate = len(runs) * args.steps * args.speakers * args.utterances / seconds
            seed_rate = seed_rate or rate
            ratio = statistics.median(run['utterances_per_second'] / seed['utterances_per_second']
                                      for run, seed in zip(runs, results['seed']))
            gpu = max(run['gpu_peak_mib'] for run in runs)
            print(f'  {names[variant]:30s} {rate:7.1f} utterances/s ({rate / seed_rate:.2f}x over all rounds, '
                  f'median round {ratio:.2f}x); data wait '
                  f'{100 * sum(run["wait_share"] * run["seconds"] for run in runs) / seconds:.1f}% of the step; '
                  f'peak RSS main {max(run["main_rss_mib"] for run in runs):.0f} MiB, '
                  f'per worker {max(run["worker_rss_mib"] for run in runs):.0f} MiB'
                  + (f', GPU {gpu:.0f} MiB' if gpu else ''))
        print('command: python benchmarks/train_step.py ' + ' '.join(
            f'--{key} {getattr(args, key)}' for key in ('speakers', 'utterances', 'steps', 'warmup', 'rounds',
                                                         'corpus_speakers', 'corpus_utterances', 'threads', 'num_workers', 'device')))
        print(f'CPU: {cpu_description()}')
    finally:
        shutil.rmtree(folder)


if __name__ == '__main__':
    main()
