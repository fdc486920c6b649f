"""Train the speaker encoder with the GE2E loss (SPEC section 4).

    python Train.py [-hp Hyper_Parameter.yaml] [-s STEP]
    torchrun --nproc_per_node=GPUS Train.py [-hp ...] [-s STEP]      # DistributedDataParallel

Checkpoints go to <Checkpoint_Path>/S_<step>.pkl in the seed's layout ('Model', 'Optimizer',
'Scheduler', 'Steps', 'Epochs') plus 'Loss', the state of the GE2E scale w and bias b; TensorBoard
logs and t-SNE figures go to <Log_Path>. `-s STEP` resumes from S_<STEP>.pkl exactly: steps,
epochs, learning-rate schedule, optimiser state, w and b. Ctrl-C (or SIGTERM) finishes the
current step, saves a checkpoint and exits.

Other code calls `train(hp, resume_step)`; the tests call the pieces (`Trainer.train_step`,
`Trainer.evaluate`, `save_checkpoint`, `load_checkpoint`, `list_checkpoints`).
"""
import argparse
import io
import math
import os
import re
import signal
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

import Datasets
from Hyper_Parameters import HyperParameterError, load_hyper_parameters, save_hyper_parameters
from Inference import InferenceError, build_model, load_state_dict, tsne_figure
from Loss import GE2ELoss
from Metrics import equal_error_rate
from Modules import Encoder
from Patterns import MetadataError, write_atomically

MAX_NONFINITE_IN_A_ROW = 10
EER_MAX_UTTERANCES = 5000         # pairs grow with the square: the EER uses at most this many utterances
TSNE_SPEAKERS = 10
EVAL_SEED = 0


class TrainingError(RuntimeError):
    """Training cannot start or go on; the message says why and what to do."""


class EncoderWithLoss(torch.nn.Module):
    """The encoder and the GE2E loss as one module, so that DistributedDataParallel averages the
    gradients of w and b along with the encoder's."""

    def __init__(self, encoder: Encoder, loss: GE2ELoss, utterances_per_speaker: int):
        super().__init__()
        self.encoder, self.loss = encoder, loss
        self.utterances_per_speaker = utterances_per_speaker

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        embeddings = self.encoder(mels)                                              # [N * M, D]
        return self.loss(embeddings.view(-1, self.utterances_per_speaker, embeddings.size(-1)))   # [N, M, D]


# ----------------------------------------------------------------------------------- checkpoints

def checkpoint_file(checkpoint_path: str, step: int) -> str:
    return os.path.join(checkpoint_path, f'S_{step}.pkl')


def list_checkpoints(checkpoint_path: str) -> list:
    """Steps of the S_<step>.pkl files in checkpoint_path, ascending."""
    if not os.path.isdir(checkpoint_path):
        return []
    return sorted(int(match.group(1)) for name in os.listdir(checkpoint_path)
                  if (match := re.fullmatch(r'S_(\d+)\.pkl', name)))


def save_checkpoint(state: dict, path: str) -> None:
    """torch.save, written atomically: a kill never leaves a truncated checkpoint."""
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomically(path, buffer.getvalue())


def load_checkpoint(path: str) -> dict:
    """A checkpoint of this project or of the seed, loaded as data only (weights_only)."""
    return torch.load(path, map_location='cpu', weights_only=True)


def missing_checkpoint_message(checkpoint_path: str, step: int) -> str:
    steps = list_checkpoints(checkpoint_path)
    found = (f'checkpoints there: {", ".join(f"S_{s}.pkl" for s in steps)} (resume the last with -s {steps[-1]})'
             if steps else 'there are no checkpoints there (start from scratch without -s)')
    return f'{checkpoint_file(checkpoint_path, step)}: no such checkpoint; {found}'


# -------------------------------------------------------------------------------- devices, DDP

def distributed_environment() -> tuple:
    """(rank, world_size, local_rank) as torchrun sets them; (0, 1, 0) for a plain run."""
    return int(os.environ.get('RANK', 0)), int(os.environ.get('WORLD_SIZE', 1)), int(os.environ.get('LOCAL_RANK', 0))


def select_device(device_key, local_rank: int, distributed: bool, log) -> torch.device:
    """The Device key: '-1' is the CPU, otherwise a CUDA index (under torchrun, each process
    takes its LOCAL_RANK). Without CUDA, the CPU with a warning."""
    key = str(device_key).split(',')[0].strip()
    if key == '-1':
        return torch.device('cpu')
    if not torch.cuda.is_available():
        log(f"Warning: Device is '{device_key}' but CUDA is not available here: training on the CPU "
            f"(set Device: '-1' to choose the CPU and silence this warning).")
        return torch.device('cpu')
    return torch.device('cuda', local_rank if distributed else int(key))


def configure_cpu_arithmetic() -> None:
    """Flush denormal floats to zero, as GPUs do. Gradients that fade through an LSTM's frames
    reach the denormal range, where x86 arithmetic is many times slower: a training step of
    4 x 4 utterances on 550-frame crops of synthetic patterns took 6.3 s instead of 0.85 s on
    one core. Threads inherit the setting when they are created, so Train.py calls this before the
    first parallel torch operation; called later, it covers the calling thread only."""
    torch.set_flush_denormal(True)


def cpu_has_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX), where bfloat16
    autocast is fast; elsewhere it is emulated and slower than float32."""
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as stream:
            flags = next((line for line in stream if line.startswith('flags')), '').split()
    except OSError:
        return False
    return 'avx512_bf16' in flags or 'amx_bf16' in flags


class StopRequest:
    """The first Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step, save
    and exit; a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.signal_name = None
        self._previous = {}

    def __enter__(self):
        if hasattr(signal, 'SIGTERM'):
            for number in (signal.SIGINT, signal.SIGTERM):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exception):
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number, frame):
        if self.signal_name is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(number).name


# ------------------------------------------------------------------------------------- evaluation

def verification_eer(embeddings: torch.Tensor, labels: list) -> float:
    """EER (fraction) of cosine scores over every pair of (L2-normalised) utterance embeddings."""
    embeddings, labels = embeddings[:EER_MAX_UTTERANCES], labels[:EER_MAX_UTTERANCES]
    scores = embeddings @ embeddings.T
    codes = {label: code for code, label in enumerate(dict.fromkeys(labels))}
    codes = torch.tensor([codes[label] for label in labels])
    first, second = torch.triu_indices(len(labels), len(labels), offset=1)
    return equal_error_rate(scores[first, second].numpy(), (codes[first] == codes[second]).numpy())


# ------------------------------------------------------------------------------------- trainer

class Trainer:
    """Everything one training process holds: data, model, loss, optimiser, logs.

    Rank 0 (or the only process) logs, evaluates and saves; other ranks only train.
    """

    def __init__(self, hp, resume_step: int = 0, log=None, init_checkpoint: str = None):
        self.hp = hp
        self.rank, self.world_size, local_rank = distributed_environment()
        self.distributed = self.world_size > 1
        self.is_main = self.rank == 0
        self.log = (log or tqdm.write) if self.is_main else (lambda message: None)
        if resume_step and not os.path.isfile(checkpoint_file(hp.Checkpoint_Path, resume_step)):
            raise TrainingError(missing_checkpoint_message(hp.Checkpoint_Path, resume_step))
        self.device = select_device(hp.Device, local_rank, self.distributed, self.log)
        configure_cpu_arithmetic()
        if self.distributed and not torch.distributed.is_initialized():
            torch.distributed.init_process_group('nccl' if self.device.type == 'cuda' else 'gloo')
        if self.device.type == 'cuda':
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True
        # A fresh data stream per rank and per resumption (DDP copies rank 0's initial weights).
        torch.manual_seed(1_000_003 * self.rank + resume_step)
        self.steps, self.epochs = 0, 0
        # Mixed precision: float16 with loss scaling on CUDA; bfloat16 (float32's range, no
        # scaling) on CPUs with native bfloat16 arithmetic.
        self.autocast_dtype = torch.float16 if self.device.type == 'cuda' else torch.bfloat16
        self.mixed_precision = bool(hp.Train.Mixed_Precision) and (self.device.type == 'cuda' or cpu_has_bfloat16())
        if hp.Train.Mixed_Precision and not self.mixed_precision:
            self.log('Train.Mixed_Precision: this CPU has no native bfloat16 arithmetic: training in float32.')
        self._build_data()
        self._build_model()
        if resume_step:
            self.load(resume_step)
        elif init_checkpoint:
            self.initialise_from(init_checkpoint)
        self.writer = None
        if self.is_main:
            from tensorboardX import SummaryWriter
            os.makedirs(hp.Checkpoint_Path, exist_ok=True)
            save_hyper_parameters(hp, os.path.join(hp.Checkpoint_Path, 'Hyper_Parameter.yaml'))
            self.writer = SummaryWriter(hp.Log_Path)
            self.log(f'Run directory: {os.path.abspath(hp.Log_Path)} (tensorboard --logdir {hp.Log_Path}); '
                     f'checkpoints: {os.path.abspath(hp.Checkpoint_Path)}')
        self.skipped_steps = 0
        self.outcome = None
        self.command = 'python Train.py'          # for the resume hint; main() adds its -hp

    # -- set-up

    def _build_data(self) -> None:
        train_hp = self.hp.Train
        batch = train_hp.Batch.Train
        self.train_dataset = Datasets.load_speaker_dataset(
            train_hp.Train_Pattern, self.hp.Sound, batch.Pattern_per_Speaker, train_hp.Use_Pattern_Cache,
            use_store=train_hp.Use_Packed_Store, log=self.log)
        self.log(f'{train_hp.Train_Pattern.Path}: {len(self.train_dataset)} training speakers with at least '
                 f'{batch.Pattern_per_Speaker} patterns, {self.train_dataset.left_out} with fewer left out '
                 f'(Train.Batch.Train.Pattern_per_Speaker); reading '
                 + ('its packed store' if self.train_dataset.store is not None else 'the pattern pickles'))
        Datasets.check_enough_speakers(self.train_dataset, batch.Speaker, self.world_size)
        # Under DDP every rank shuffles the speakers alike (seed 0, the epoch) and takes its own share.
        sampler = torch.utils.data.DistributedSampler(self.train_dataset, drop_last=True) if self.distributed else None
        self.train_sampler = sampler
        self.train_loader = Datasets.make_loader(
            self.train_dataset, Datasets.TrainCollater(train_hp.Frame_Length.Min, train_hp.Frame_Length.Max),
            batch.Speaker, train_hp.Num_Workers, training=True, pin_memory=self.device.type == 'cuda', sampler=sampler)
        self.eval_dataset, self.eval_loader = None, None
        if self.is_main:
            self._build_evaluation_data()

    def _build_evaluation_data(self) -> None:
        train_hp = self.hp.Train
        batch = train_hp.Batch.Eval
        try:
            dataset = Datasets.load_speaker_dataset(
                train_hp.Eval_Pattern, self.hp.Sound, batch.Pattern_per_Speaker, False, fixed_seed=EVAL_SEED,
                use_store=train_hp.Use_Packed_Store, log=self.log)
        except MetadataError as error:
            self.log(f'{error}\nTraining goes on without evaluation (no evaluation loss, EER or t-SNE figures); '
                     f'for evaluation, generate patterns with python Pattern_Generate.py -vc1t DIR.')
            return
        if len(dataset) < 2:
            self.log(f'{train_hp.Eval_Pattern.Path}: {len(dataset)} evaluation speakers with at least '
                     f'{batch.Pattern_per_Speaker} patterns (Train.Batch.Eval.Pattern_per_Speaker); evaluation '
                     f'needs 2 or more: training goes on without evaluation.')
            return
        self.log(f'{train_hp.Eval_Pattern.Path}: {len(dataset)} evaluation speakers of {batch.Pattern_per_Speaker} '
                 f'patterns, {dataset.left_out} with fewer left out')
        inference = train_hp.Inference
        collater = Datasets.EvalCollater(train_hp.Frame_Length.Min, train_hp.Frame_Length.Max, inference.Samples,
                                         inference.Frame_Length, inference.Overlap_Length, EVAL_SEED)
        self.eval_dataset = dataset
        self.eval_loader = Datasets.make_loader(dataset, collater, batch.Speaker, train_hp.Num_Workers, training=False)

    def _build_model(self) -> None:
        train_hp = self.hp.Train
        self.encoder = Encoder.from_hyper_parameters(self.hp).to(self.device)
        self.loss = GE2ELoss.from_hyper_parameters(self.hp).to(self.device)
        model = EncoderWithLoss(self.encoder, self.loss, train_hp.Batch.Train.Pattern_per_Speaker)
        if self.distributed:
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if self.device.type == 'cuda' else None)
        self.model = model
        # One group, the encoder's parameters first: the order of the seed's optimiser state.
        self.optimizer = torch.optim.RAdam(
            list(self.encoder.parameters()) + list(self.loss.parameters()),
            lr=train_hp.Learning_Rate.Initial, eps=train_hp.Learning_Rate.Epsilon)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=train_hp.Learning_Rate.Decay_Step, gamma=train_hp.Learning_Rate.Decay_Rate)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.mixed_precision and self.device.type == 'cuda')

    # -- checkpoints

    def state(self) -> dict:
        state = {'Model': self.encoder.state_dict(), 'Optimizer': self.optimizer.state_dict(),
                 'Scheduler': self.scheduler.state_dict(), 'Steps': self.steps, 'Epochs': self.epochs,
                 'Loss': self.loss.state_dict()}
        if self.scaler.is_enabled():
            state['Scaler'] = self.scaler.state_dict()
        return state

    def save(self) -> str:
        path = checkpoint_file(self.hp.Checkpoint_Path, self.steps)
        if self.is_main:
            save_checkpoint(self.state(), path)
            self.log(f'Checkpoint saved: {path}')
        return path

    def load(self, step: int) -> None:
        path = checkpoint_file(self.hp.Checkpoint_Path, step)
        state = load_checkpoint(path)
        self.encoder.load_state_dict(state['Model'])
        optimizer_state = state['Optimizer']
        if 'Loss' in state:
            self.loss.load_state_dict(state['Loss'])
        else:
            # The seed's checkpoints hold no w and b, and its optimiser knew only the encoder.
            self.log(f'{path}: no GE2E w and b in this checkpoint (one of the seed\'s): they restart at '
                     f'w = {self.loss.w.item():g}, b = {self.loss.b.item():g}')
            group = optimizer_state['param_groups'][0]
            group['params'] = list(group['params']) + [len(group['params']) + index for index in range(2)]
        self.optimizer.load_state_dict(optimizer_state)
        self.scheduler.load_state_dict(state['Scheduler'])
        if 'Scaler' in state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state['Scaler'])
        self.steps, self.epochs = int(state['Steps']), int(state['Epochs'])
        self.log(f'Resumed from {path}: step {self.steps}, epoch {self.epochs}, '
                 f'learning rate {self.scheduler.get_last_lr()[0]:g}')

    def initialise_from(self, path: str) -> None:
        """Fine-tuning: the encoder (and GE2E w, b where the checkpoint has them) of another run's
        checkpoint or a seed one, at step 0 with this run's fresh optimiser and schedule."""
        try:
            state, steps = load_state_dict(path)
            self.encoder.load_state_dict(build_model(state, self.hp, path).state_dict())
        except InferenceError as error:
            raise TrainingError(f'--init {error}') from None
        loss_state = torch.load(path, map_location='cpu', weights_only=True).get('Loss')
        if isinstance(loss_state, dict) and set(loss_state) == {'w', 'b'}:
            self.loss.load_state_dict(loss_state)
            origin = f'w = {self.loss.w.item():g}, b = {self.loss.b.item():g} from it'
        else:
            origin = f'no w and b in it: they start at w = {self.loss.w.item():g}, b = {self.loss.b.item():g}'
        self.log(f'Fine-tuning from {path} (its step {steps}): encoder weights loaded, {origin}; '
                 f'training starts at step 0 with a fresh optimiser and schedule')

    # -- one step

    def train_step(self, mels: torch.Tensor, stop_requested: bool = False):
        """One optimiser step on mels [speakers * utterances, mel_dim, frames].

        Returns (loss, stop): the loss averaged over processes, or None when it (or the
        gradient) was not finite and the step was skipped; stop is True when any process was
        asked to stop. One host-device synchronisation per step.
        """
        mels = mels.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.mixed_precision):
            loss = self.model(mels)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        # Clip the encoder as the seed did; the gradients of w and b are bounded by construction.
        gradient_norm = torch.nn.utils.clip_grad_norm_(self.encoder.parameters(), self.hp.Train.Gradient_Norm)
        if self.scaler.is_enabled():   # the scaler skips overflowing steps itself
            gradient_norm = torch.zeros_like(gradient_norm)
        report = torch.stack([loss.detach().float(), gradient_norm.float(),
                              torch.tensor(float(stop_requested), device=loss.device)])
        if self.distributed:
            torch.distributed.all_reduce(report)
            report[0] /= self.world_size
        loss_value, norm_value, stops = report.tolist()
        if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler.is_enabled():
                self.scaler.update()   # closes the step's unscale_; an overflow lowers the scale
            return None, stops > 0
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.steps += 1
        return loss_value, stops > 0

    # -- evaluation

    @torch.no_grad()
    def embed_evaluation_set(self) -> dict:
        """Embeddings of the evaluation speakers (the same utterances and crops every time):
        'single' and 'multi' L2-normalised [utterances, D], 'labels' ['dataset.speaker'], and
        'loss', the mean GE2E loss over the evaluation batches."""
        utterances = self.hp.Train.Batch.Eval.Pattern_per_Speaker
        samples = self.hp.Train.Inference.Samples
        self.encoder.eval()
        singles, multis, labels, losses = [], [], [], []
        try:
            for batch in self.eval_loader:
                speakers = len(batch['indices'])
                with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.mixed_precision):
                    single = self.encoder(batch['single'].to(self.device, non_blocking=True)).float()   # [N * M, D]
                    multi = self.encoder(batch['multi'].to(self.device, non_blocking=True)).float()     # [N * M * S, D]
                if speakers >= 2:
                    losses.append(self.loss(single.view(speakers, utterances, -1)).item())
                multi = multi.view(speakers * utterances, samples, -1).mean(dim=1)
                singles.append(torch.nn.functional.normalize(single, dim=1).cpu())
                multis.append(torch.nn.functional.normalize(multi, dim=1).cpu())
                labels.extend(self.eval_dataset.label(index) for index in batch['indices'] for _ in range(utterances))
        finally:
            self.encoder.train()
        return {'single': torch.cat(singles), 'multi': torch.cat(multis), 'labels': labels,
                'loss': float(np.mean(losses)) if losses else float('nan')}

    def evaluate(self) -> dict:
        """Evaluation loss (mean over batches), EER of multi- and single-slice embeddings,
        t-SNE figures and the embedding projector, logged at the current step. Rank 0 only."""
        if self.eval_loader is None or not self.is_main:
            return {}
        started = time.perf_counter()
        result = self.embed_evaluation_set()
        result['eer'] = verification_eer(result['multi'], result['labels'])
        result['eer_single'] = verification_eer(result['single'], result['labels'])
        self.writer.add_scalar('evaluation/loss', result['loss'], self.steps)
        self.writer.add_scalar('evaluation/eer', result['eer'], self.steps)
        self.writer.add_scalar('evaluation/eer_single', result['eer_single'], self.steps)
        shown = TSNE_SPEAKERS * self.hp.Train.Batch.Eval.Pattern_per_Speaker
        labels = result['labels'][:shown]
        figures = os.path.join(self.hp.Log_Path, 'Figures')
        os.makedirs(figures, exist_ok=True)
        import matplotlib.pyplot as plt
        for kind, title in (('single', 'one crop of Min..Max frames'), ('multi', 'multi-slice average')):
            figure = tsne_figure(result[kind][:shown].numpy(), labels, f'Step {self.steps}: {title}')
            figure.savefig(os.path.join(figures, f'S{self.steps}_{kind}.png'), dpi=120, bbox_inches='tight')
            self.writer.add_figure(f'evaluation/tsne_{kind}', figure, self.steps)
            plt.close(figure)
        self.writer.add_embedding(result['multi'][:shown], metadata=labels, global_step=self.steps,
                                  tag='evaluation/multi_slice')
        self.writer.flush()
        self.log(f'Step {self.steps}: evaluation loss {result["loss"]:.4f}, EER {100 * result["eer"]:.2f}% '
                 f'(single crop {100 * result["eer_single"]:.2f}%) over {len(result["labels"])} utterances of '
                 f'{len(dict.fromkeys(result["labels"]))} speakers, {time.perf_counter() - started:.1f} s; '
                 f'figures in {figures}')
        return result

    # -- the loop

    def run(self) -> str:
        """Train to Train.Max_Step. Returns 'finished' or the name of the signal that stopped it."""
        train_hp = self.hp.Train
        utterances = train_hp.Batch.Train.Speaker * train_hp.Batch.Train.Pattern_per_Speaker * self.world_size
        if train_hp.Initial_Inference and self.steps == 0:
            self.evaluate()
        bar = tqdm(initial=self.steps, total=train_hp.Max_Step, desc='[Training]', unit='step',
                   disable=not self.is_main, dynamic_ncols=True)
        losses, waited, window_started = [], 0.0, time.perf_counter()
        nonfinite_in_a_row = 0
        outcome = 'finished'
        with StopRequest() as stop:
            while self.steps < train_hp.Max_Step and outcome == 'finished':
                if self.train_sampler is not None:
                    self.train_sampler.set_epoch(self.epochs)
                batches = iter(self.train_loader)
                while True:
                    wait_started = time.perf_counter()
                    mels = next(batches, None)
                    waited += time.perf_counter() - wait_started
                    if mels is None:
                        self.epochs += 1
                        break
                    loss, stop_now = self.train_step(mels, stop.signal_name is not None)
                    # Alone, stop after the step a signal arrived in; under DDP, when all ranks know.
                    stop_now = stop_now or (not self.distributed and stop.signal_name is not None)
                    if loss is None:
                        nonfinite_in_a_row += 1
                        self.skipped_steps += 1
                        self.log(f'Step {self.steps + 1}: non-finite loss or gradient, step skipped '
                                 f'({self.skipped_steps} skipped in this run, {nonfinite_in_a_row} in a row)')
                        if nonfinite_in_a_row >= MAX_NONFINITE_IN_A_ROW:
                            bar.close()
                            raise TrainingError(
                                f'Stopped at step {self.steps}: the loss was not finite in {nonfinite_in_a_row} '
                                f'steps in a row, so no checkpoint was written. Resume from the last checkpoint '
                                f'({", ".join(f"S_{s}" for s in list_checkpoints(self.hp.Checkpoint_Path)[-1:]) or "none"}) '
                                f'with a lower Train.Learning_Rate.Initial, or check the patterns.')
                    else:
                        nonfinite_in_a_row = 0
                        losses.append(loss)
                        bar.update(1)
                        elapsed = time.perf_counter() - window_started
                        bar.set_postfix({'loss': f'{np.mean(losses):.4f}',
                                         'utterances/s': f'{len(losses) * utterances / elapsed:.1f}'}, refresh=False)
                        if self.steps % train_hp.Logging_Interval == 0:
                            self._log_training(losses, waited, elapsed, utterances)
                            losses, waited, window_started = [], 0.0, time.perf_counter()
                        if self.steps % train_hp.Checkpoint_Save_Interval == 0 or self.steps >= train_hp.Max_Step:
                            self.save()
                        if self.steps % train_hp.Evaluation_Interval == 0:
                            self.evaluate()
                    if stop_now:
                        outcome = stop.signal_name or 'SIGINT'   # another rank's signal
                        break
                    if self.steps >= train_hp.Max_Step:
                        break
        bar.close()
        if outcome != 'finished':
            path = checkpoint_file(self.hp.Checkpoint_Path, self.steps)
            if not os.path.isfile(path):
                self.save()
            self.log(f'{outcome}: stopped at step {self.steps}; resume with: {self.command} -s {self.steps}')
        else:
            self.log(f'Finished training at step {self.steps}.')
        if self.writer is not None:
            self.writer.close()
        return outcome

    def _log_training(self, losses: list, waited: float, elapsed: float, utterances: int) -> None:
        if not self.is_main:
            return
        scalars = {'train/loss': float(np.mean(losses)), 'train/learning_rate': self.scheduler.get_last_lr()[0],
                   'train/w': self.loss.w.item(), 'train/b': self.loss.b.item(),
                   'train/utterances_per_second': len(losses) * utterances / elapsed,
                   'train/data_wait_share': waited / elapsed, 'train/skipped_steps': self.skipped_steps}
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, self.steps)


def train(hp, resume_step: int = 0, log=None, command: str = 'python Train.py', init_checkpoint: str = None) -> Trainer:
    """Train with hyper-parameters hp (Hyper_Parameters.load_hyper_parameters), from scratch or
    from checkpoint S_<resume_step>; `command` starts the resume hint printed on Ctrl-C. Raises
    TrainingError, MetadataError or Datasets.DatasetConfigurationError with a how-to when it
    cannot start or go on."""
    trainer = Trainer(hp, resume_step, log, init_checkpoint)
    trainer.command = command
    try:
        trainer.outcome = trainer.run()
    finally:
        if trainer.distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return trainer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description='Train the GE2E speaker encoder.')
    parser.add_argument('-hp', '--hyper_parameters', default='Hyper_Parameter.yaml', help='hyper-parameter file')
    parser.add_argument('-s', '--steps', default=0, type=int, help='resume from checkpoint S_<STEPS>.pkl')
    parser.add_argument('--init', metavar='CHECKPOINT',
                        help='fine-tune: start at step 0 from this checkpoint\'s encoder (and w, b), fresh optimiser')
    args = parser.parse_args(argv)
    if args.init and args.steps:
        parser.error('-s resumes this run and --init starts a new one from another checkpoint: give one of them')
    configure_cpu_arithmetic()
    try:
        command = 'python Train.py' + ('' if args.hyper_parameters == 'Hyper_Parameter.yaml' else f' -hp {args.hyper_parameters}')
        trainer = train(load_hyper_parameters(args.hyper_parameters), args.steps, command=command,
                        init_checkpoint=args.init)
    except (HyperParameterError, MetadataError, Datasets.DatasetConfigurationError, TrainingError) as error:
        print(f'Train.py: {error}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('Train.py: interrupted twice: stopped without saving a checkpoint', file=sys.stderr)
        return 130
    return 0 if trainer.outcome == 'finished' else 130


if __name__ == '__main__':
    sys.exit(main())
