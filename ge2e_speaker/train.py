"""Train the speaker encoder with the GE2E loss (SPEC section 4).

    python Train.py [-hp Hyper_Parameter.yaml] [-s STEP]
    torchrun --nproc_per_node=GPUS Train.py [-hp ...] [-s STEP]      # DistributedDataParallel

Checkpoints go to <Checkpoint_Path>/S_<step>.pkl (checkpoints.py: the seed's layout plus the GE2E
w and b and the run's settings, and 'Batches', where the batches stand, when they come from the
packed store: batches.py); TensorBoard logs and t-SNE figures go to <Log_Path>. `-s STEP`
resumes from S_<STEP>.pkl exactly: steps, epochs, learning-rate schedule, optimiser state, w and
b. Ctrl-C (or SIGTERM) finishes the current step, saves a checkpoint and exits; any other error
after the first step (a data-loading worker killed, most patterns unusable) saves one too.

A Trainer holds one process's state, built in its constructor; Trainer.run is the loop. Other code
calls `train(hp, resume_step)`; the tests call the pieces (`Trainer.train_step`, `Trainer.evaluate`).
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from . import batches, cpu_defaults, datasets, runtime
from .atomic_files import folder_problem
from .augmentation import BatchAugmenter
from .evaluation import Evaluation
from .checkpoints import (CheckpointError, DeviceError, check_checkpoint_folder, checkpoint_file, encoder_state,
                          load_checkpoint, load_encoder_state, load_for_fine_tuning, missing_checkpoint_message,
                          resume_advice, save_checkpoint, save_hyper_parameters_beside, select_device, training_state_of)
from .event_log import EventLog
from .hyper_parameters import HyperParameterError, load_hyper_parameters, to_dict
from .loss import EncoderWithLoss, GE2ELoss
from .modules import Encoder
from .patterns import MetadataError
from .training_stops import NonFiniteSteps, NonFiniteStop, PatternProblems, TrainingError, stop_cause


class LoggingWindow:
    """The losses and the time spent waiting for batches since the last logged step."""

    def __init__(self, utterances_per_step: int):
        self.utterances_per_step = utterances_per_step
        self.reset()

    def reset(self) -> None:
        self.losses, self.waited, self.started = [], 0.0, time.perf_counter()

    def mean_loss(self) -> float:
        return float(np.mean(self.losses))

    def utterances_per_second(self) -> float:
        return len(self.losses) * self.utterances_per_step / (time.perf_counter() - self.started)

    def wait_share(self) -> float:
        return self.waited / (time.perf_counter() - self.started)


# ------------------------------------------------------------------------------------ helpers

def training_data(hp, process: runtime.TorchrunProcess, device: torch.device, workers: int, log) -> tuple:
    """(dataset, sampler or None, loader) of the training speakers; under torchrun every rank
    shuffles the speakers alike (seed 0, the epoch) and takes its own share. The loader is
    batches.training_batches: threads over the packed store, or DataLoader workers over the pickles."""
    train_hp, batch = hp.Train, hp.Train.Batch.Train
    dataset = datasets.load_speaker_dataset(train_hp.Train_Pattern, hp.Sound, batch.Pattern_per_Speaker,
                                            train_hp.Use_Pattern_Cache, use_store=train_hp.Use_Packed_Store, log=log)
    log(f'{train_hp.Train_Pattern.Path}: {len(dataset)} training speakers with at least '
        f'{batch.Pattern_per_Speaker} patterns, {dataset.left_out} with fewer left out '
        f'(Train.Batch.Train.Pattern_per_Speaker); reading '
        + ('its packed store' if dataset.store is not None else 'the pattern pickles'))
    datasets.check_enough_speakers(dataset, batch.Speaker, process.world_size)
    sampler = torch.utils.data.DistributedSampler(dataset, drop_last=True) if process.distributed else None
    loader = batches.training_batches(dataset, batch.Speaker, train_hp.Frame_Length.Min, train_hp.Frame_Length.Max,
                                      workers, device, sampler, seed=train_hp.Seed)
    return dataset, sampler, loader


# ------------------------------------------------------------------------------------- trainer

class Trainer:
    """Everything one training process holds, all set here: data, model, loss, optimiser,
    counters, logs. Rank 0 (or the only process) logs, evaluates and saves; other ranks only train.

    command: how the run was started, for the resume hint printed on Ctrl-C. init_checkpoint:
    fine-tune from another run's checkpoint (Train.py --init) instead of starting from scratch.
    """

    def __init__(self, hp, resume_step: int = 0, log=None, command: str = 'python Train.py',
                 init_checkpoint: str = None):
        self.hp, self.command = hp, command
        self.process = runtime.torchrun_process()
        self.distributed, self.is_main = self.process.distributed, self.process.is_main
        self.log = (log or tqdm.write) if self.is_main else (lambda message: None)
        if resume_step and not os.path.isfile(checkpoint_file(hp.Checkpoint_Path, resume_step)):
            raise TrainingError(missing_checkpoint_message(hp.Checkpoint_Path, resume_step))
        check_checkpoint_folder(hp.Checkpoint_Path, new_run=not resume_step)
        if self.is_main and folder_problem(hp.Log_Path):
            raise TrainingError(f'{folder_problem(hp.Log_Path)}; make it writable, free space, or choose another Log_Path')
        self.device = select_device(hp.Device, local_rank=self.process.local_rank if self.distributed else None,
                                    warn=lambda message: self.log(f'Warning: {message}'))
        runtime.configure_cpu_arithmetic()      # before the first parallel torch operation
        if self.distributed:
            runtime.join_process_group(self.device)
        if self.device.type == 'cuda':
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True
        # A fresh data stream per Train.Seed, rank and resumption (DDP copies rank 0's initial weights);
        # the packed store's batches instead go on from where the checkpoint left them (batches.py).
        torch.manual_seed(1_000_000_007 * hp.Train.Seed + 1_000_003 * self.process.rank + resume_step)
        # Mixed precision: float16 with loss scaling on CUDA; bfloat16 (float32's range, no
        # scaling) on CPUs with native bfloat16 arithmetic.
        self.autocast_dtype = torch.float16 if self.device.type == 'cuda' else torch.bfloat16
        self.mixed_precision = bool(hp.Train.Mixed_Precision) and (self.device.type == 'cuda' or runtime.cpu_has_bfloat16())
        if hp.Train.Mixed_Precision and not self.mixed_precision:
            self.log('Train.Mixed_Precision: this CPU has no native bfloat16 arithmetic: training in float32.')
        # Threads and loader workers that fit this CPU (Cpu_Defaults); each torchrun process gets its share.
        threads, self.num_workers = cpu_defaults.training(
            hp.Train.Num_Workers, self.device.type, self.mixed_precision,
            max(1, cpu_defaults.usable_cores() // self.process.world_size))
        if threads is not None:
            self.log(f'CPU training in {"bfloat16" if self.mixed_precision else "float32"}: '
                     f'{cpu_defaults.set_threads(threads)} torch threads, {self.num_workers} loader workers')

        self.train_dataset, self.train_sampler, self.train_loader = training_data(
            hp, self.process, self.device, self.num_workers, self.log)
        self.evaluation = Evaluation.of(hp, self.num_workers, self.log) if self.is_main else None

        self.encoder = Encoder.from_hyper_parameters(hp).to(self.device)
        self.loss = GE2ELoss.from_hyper_parameters(hp).to(self.device)
        model = EncoderWithLoss(self.encoder, self.loss, hp.Train.Batch.Train.Pattern_per_Speaker)
        self.model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[self.device.index] if self.device.type == 'cuda' else None) if self.distributed else model
        # One group, the encoder's parameters first: the order of the seed's optimiser state.
        learning_rate = hp.Train.Learning_Rate
        self.optimizer = torch.optim.RAdam(list(self.encoder.parameters()) + list(self.loss.parameters()),
                                           lr=learning_rate.Initial, eps=learning_rate.Epsilon)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=learning_rate.Decay_Step,
                                                         gamma=learning_rate.Decay_Rate)
        # On-the-fly augmentation (Augmentation section; off in the seed's file), seeded per step and rank.
        self.augmenter = (BatchAugmenter(hp.Augmentation, hp.Sound, hp.Train.Batch.Train.Pattern_per_Speaker,
                                         self.device, hp.Augmentation.Seed * 1_000 + self.process.rank)
                          if BatchAugmenter.enabled(hp.Augmentation) else None)
        if self.augmenter is not None:
            self.log(f'Augmentation on the fly: {BatchAugmenter.describe(hp.Augmentation)}')
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.mixed_precision and self.device.type == 'cuda')

        self.steps, self.epochs = 0, 0
        self.nonfinite = NonFiniteSteps(hp.Checkpoint_Path, self.log)
        self.pattern_problems = PatternProblems(hp.Train.Train_Pattern.Path, self.log)
        self.outcome = None                     # after run(): 'finished' or the name of the signal that stopped it
        if resume_step:
            self.load(resume_step)
        elif init_checkpoint:
            self.initialise_from(init_checkpoint)
        self.writer = None
        if self.is_main:
            self.writer = EventLog(hp.Log_Path)
            save_hyper_parameters_beside(hp, hp.Checkpoint_Path)      # last: only a run that starts writes it
            self.log(f'Run directory: {os.path.abspath(hp.Log_Path)} (tensorboard --logdir {hp.Log_Path}); '
                     f'checkpoints: {os.path.abspath(hp.Checkpoint_Path)}')

    # -- the loop

    def run(self) -> str:
        """Train to Train.Max_Step. Returns (and keeps in self.outcome) 'finished' or the name of the
        signal that stopped it. A data-loading worker's death is met in the loop, never mid-step."""
        runtime.meet_worker_deaths_in_loop()
        self.train_until_stopped()
        if self.outcome != 'finished':
            if not os.path.isfile(checkpoint_file(self.hp.Checkpoint_Path, self.steps)):
                self.save()
            self.log(f'{self.outcome}: stopped at step {self.steps}; resume with: {self.command} -s {self.steps}')
        else:
            self.log(f'Finished training at step {self.steps}.')
        if self.writer is not None:
            self.writer.close()
        return self.outcome

    def train_until_stopped(self) -> None:
        """The loop, and what follows a fatal error in it: a checkpoint first (save_on_error),
        then one line (TrainingError) when the cause is one the user can act on."""
        train_hp = self.hp.Train
        if train_hp.Initial_Inference and self.steps == 0:
            self.evaluate()
        window = LoggingWindow(train_hp.Batch.Train.Speaker * train_hp.Batch.Train.Pattern_per_Speaker
                               * self.process.world_size)
        self.outcome, started_at = 'finished', self.steps
        try:
            with runtime.StopRequest() as stop, tqdm(initial=self.steps, total=train_hp.Max_Step, desc='[Training]',
                                                     unit='step', disable=not self.is_main, dynamic_ncols=True) as bar:
                self.loop(self.batches(window), window, stop, bar)
        except (NonFiniteStop, CheckpointError):
            raise
        except Exception as error:
            saved = self.save_on_error(started_at)
            cause = stop_cause(error)
            if cause:
                raise TrainingError(f'stopped at step {self.steps}: {cause}; {saved}') from None
            self.log(f'{type(error).__name__} at step {self.steps}: {saved}')
            raise

    def loop(self, stream, window: LoggingWindow, stop: runtime.StopRequest, bar) -> None:
        """Steps until Train.Max_Step or a stop request; sets self.outcome to the signal's name on a stop."""
        train_hp = self.hp.Train
        while self.steps < train_hp.Max_Step:
            batch = next(stream)
            self.pattern_problems.add(batch)        # raises once most patterns are unusable
            if batch.mels is None:
                continue
            loss, stop_everywhere = self.train_step(batch.mels, stop.requested)
            if loss is None:
                self.nonfinite.skip(self.steps, batch)  # raises NonFiniteStop after too many in a row
            else:
                self.nonfinite.in_a_row = 0
                window.losses.append(loss)
                bar.update(1)
                bar.set_postfix({'loss': f'{window.mean_loss():.4f}',
                                 'utterances/s': f'{window.utterances_per_second():.1f}'}, refresh=False)
                if self.steps % train_hp.Logging_Interval == 0:
                    self.log_training(window)
                    window.reset()
                if self.steps % train_hp.Checkpoint_Save_Interval == 0 or self.steps >= train_hp.Max_Step:
                    self.save()
                if self.steps % train_hp.Evaluation_Interval == 0:
                    self.evaluate()
            # Alone, stop after the step a signal arrived in; under DDP, when every rank knows of it.
            if stop_everywhere or (not self.distributed and stop.requested):
                self.outcome = stop.signal_name or 'SIGINT'          # or another rank's signal
                break

    def save_on_error(self, started_at: int) -> str:
        """After a fatal error: save the steps made since the run (re)started, when not saved
        yet. Returns what the user can do next, for the error's message."""
        saved = os.path.isfile(checkpoint_file(self.hp.Checkpoint_Path, self.steps))
        if self.steps > started_at and self.is_main and not saved:
            try:
                self.save()
            except CheckpointError as error:
                return f'no checkpoint could be saved ({error})'
        return resume_advice(self.hp.Checkpoint_Path, self.command)

    def batches(self, window: LoggingWindow):
        """Training batches (datasets.TrainingBatch; the packed store's, batches.StoreBatches, carry
        no file names) without end, counting epochs; the time spent waiting for each is added to
        window.waited."""
        while True:
            if self.train_sampler is not None:
                self.train_sampler.set_epoch(self.epochs)
            iterator = iter(self.train_loader)
            while True:
                started = time.perf_counter()
                batch = next(iterator, None)
                window.waited += time.perf_counter() - started
                if batch is None:
                    break
                yield batch if isinstance(batch, datasets.TrainingBatch) else datasets.TrainingBatch(batch, [], [])
            self.epochs += 1

    def log_training(self, window: LoggingWindow) -> None:
        """TensorBoard scalars of the window's steps (rank 0)."""
        if not self.is_main:
            return
        scalars = {'train/loss': window.mean_loss(), 'train/learning_rate': self.scheduler.get_last_lr()[0],
                   'train/w': self.loss.w.item(), 'train/b': self.loss.b.item(),
                   'train/utterances_per_second': window.utterances_per_second(),
                   'train/data_wait_share': window.wait_share(), 'train/skipped_steps': self.nonfinite.skipped}
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, self.steps)

    # -- checkpoints

    def state(self) -> dict:
        state = {'Model': self.encoder.state_dict(), 'Optimizer': self.optimizer.state_dict(),
                 'Scheduler': self.scheduler.state_dict(), 'Steps': self.steps, 'Epochs': self.epochs,
                 'Loss': self.loss.state_dict(), 'Hyper_Parameters': to_dict(self.hp)}
        if self.scaler.is_enabled():
            state['Scaler'] = self.scaler.state_dict()
        if isinstance(self.train_loader, batches.StoreBatches):
            state['Batches'] = self.train_loader.state_dict()
        return state

    def save(self) -> str:
        """Save S_<steps>.pkl (rank 0). Raises CheckpointError when it cannot be written."""
        path = checkpoint_file(self.hp.Checkpoint_Path, self.steps)
        if self.is_main:
            save_checkpoint(self.state(), path, resume_command=self.command)
            self.log(f'Checkpoint saved: {path}')
        return path

    def load(self, step: int) -> None:
        """Resume from S_<step>.pkl. Raises CheckpointError (one line) for a file that is not a
        training checkpoint of a run of these settings."""
        path = checkpoint_file(self.hp.Checkpoint_Path, step)
        state = load_checkpoint(path)
        load_encoder_state(self.encoder, encoder_state(state, path), self.hp, path)
        with training_state_of(path):
            self.load_training_state(state, path)
        self.log(f'Resumed from {path}: step {self.steps}, epoch {self.epochs}, '
                 f'learning rate {self.scheduler.get_last_lr()[0]:g}')

    def load_training_state(self, state: dict, path: str) -> None:
        """Optimiser, schedule, w and b, scaler and counters of a checkpoint (Trainer.load)."""
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
        if isinstance(self.train_loader, batches.StoreBatches):   # the next batch of the run that saved
            self.train_loader.load_state_dict(state.get('Batches', {'epoch': self.epochs, 'batch': 0}))

    def initialise_from(self, path: str) -> None:
        """Fine-tuning: the encoder (and GE2E w, b where the checkpoint has them) of another run's
        checkpoint or a seed one, at step 0 with this run's fresh optimiser and schedule."""
        try:
            step, origin = load_for_fine_tuning(path, self.encoder, self.loss, self.hp)
        except CheckpointError as error:
            raise TrainingError(f'--init {error}') from None
        self.log(f'Fine-tuning from {path} (its step {step}): encoder weights loaded, {origin}; '
                 f'training starts at step 0 with a fresh optimiser and schedule')

    # -- one step

    def train_step(self, mels: torch.Tensor, stop_requested: bool = False):
        """One optimiser step on mels [speakers * utterances, mel_dim, frames].

        Returns (loss, stop): the loss averaged over processes, or None when it (or the
        gradient) was not finite and the step was skipped; stop is True when any process was
        asked to stop. One host-device synchronisation per step.
        """
        mels = mels.to(self.device, non_blocking=True)
        if self.augmenter is not None:
            mels = self.augmenter(mels, self.steps)
        with self.autocast():
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
            report[0] /= self.process.world_size
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

    def autocast(self):
        """The training's precision: float16 autocast on CUDA, bfloat16 on CPUs, or none."""
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.mixed_precision)

    def evaluate(self) -> dict:
        """Evaluation.run at the current step; nothing without evaluation data or off rank 0."""
        if self.evaluation is None:
            return {}
        return self.evaluation.run(self.encoder, self.loss, self.device, self.autocast, self.steps, self.writer, self.log)


def train(hp, resume_step: int = 0, log=None, command: str = 'python Train.py', init_checkpoint: str = None) -> Trainer:
    """Train with hyper-parameters hp (hyper_parameters.load_hyper_parameters), from scratch, from
    checkpoint S_<resume_step>, or fine-tuning from init_checkpoint; `command` starts the resume
    hint printed on Ctrl-C. Raises
    TrainingError, CheckpointError, MetadataError or datasets.DatasetConfigurationError with a
    how-to when it cannot start or go on."""
    trainer = Trainer(hp, resume_step, log, command, init_checkpoint)
    try:
        trainer.run()
    finally:
        if trainer.distributed:
            runtime.leave_process_group()
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
    command = 'python Train.py' + ('' if args.hyper_parameters == 'Hyper_Parameter.yaml' else f' -hp {args.hyper_parameters}')
    try:
        trainer = train(load_hyper_parameters(args.hyper_parameters), args.steps, command=command,
                        init_checkpoint=args.init)
    except (CheckpointError, DeviceError, HyperParameterError, MetadataError, datasets.DatasetConfigurationError,
            TrainingError) as error:
        print(f'Train.py: {error}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('Train.py: interrupted twice: stopped without saving a checkpoint', file=sys.stderr)
        return 130
    return 0 if trainer.outcome == 'finished' else 130


if __name__ == '__main__':
    sys.exit(main())
