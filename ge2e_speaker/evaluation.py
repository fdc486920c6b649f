"""Training's evaluation: held-out speakers, embedded with the same utterances and crops at every
evaluation so that the curves compare steps, not samples. Logs the GE2E loss, the EER of
single-crop and multi-slice embeddings, t-SNE figures and the embedding projector."""
import os
import time

import numpy as np
import torch

from . import datasets
from .patterns import MetadataError
from .plots import save_figure, tsne_figure
from .verification import pairwise_eer

EER_MAX_UTTERANCES = 5000         # pairs grow with the square: the EER uses at most this many utterances
TSNE_SPEAKERS = 10
EVAL_SEED = 0


class Evaluation:
    """The evaluation speakers' loader and what an evaluation computes and logs."""

    def __init__(self, dataset: datasets.SpeakerDataset, loader, hp):
        self.dataset, self.loader = dataset, loader
        self.utterances = hp.Train.Batch.Eval.Pattern_per_Speaker
        self.samples = hp.Train.Inference.Samples
        self.figures = os.path.join(hp.Log_Path, 'Figures')
        self.reported = set()                                       # unusable patterns already logged

    @classmethod
    def of(cls, hp, workers: int, log):
        """The evaluation of Train.Eval_Pattern with `workers` loader processes, or None (with a line
        saying why) when it has no metadata or fewer than 2 speakers with Batch.Eval.Pattern_per_Speaker patterns."""
        train_hp, batch = hp.Train, hp.Train.Batch.Eval
        try:
            dataset = datasets.load_speaker_dataset(train_hp.Eval_Pattern, hp.Sound, batch.Pattern_per_Speaker, False,
                                                    fixed_seed=EVAL_SEED, use_store=train_hp.Use_Packed_Store, log=log)
        except MetadataError as error:
            log(f'{error}\nTraining goes on without evaluation (no evaluation loss, EER or t-SNE figures); '
                f'for evaluation, generate patterns with python Pattern_Generate.py -vc1t DIR.')
            return None
        if len(dataset) < 2:
            log(f'{train_hp.Eval_Pattern.Path}: {len(dataset)} evaluation speakers with at least '
                f'{batch.Pattern_per_Speaker} patterns (Train.Batch.Eval.Pattern_per_Speaker); evaluation '
                f'needs 2 or more: training goes on without evaluation.')
            return None
        log(f'{train_hp.Eval_Pattern.Path}: {len(dataset)} evaluation speakers of {batch.Pattern_per_Speaker} '
            f'patterns, {dataset.left_out} with fewer left out')
        inference = train_hp.Inference
        collater = datasets.EvalCollater(train_hp.Frame_Length.Min, train_hp.Frame_Length.Max, inference.Samples,
                                         inference.Frame_Length, inference.Overlap_Length, EVAL_SEED)
        return cls(dataset, datasets.make_loader(dataset, collater, batch.Speaker, workers,
                                                 training=False), hp)

    @torch.no_grad()
    def embed(self, encoder, loss, device: torch.device, autocast) -> dict:
        """'single' and 'multi' L2-normalised embeddings [utterances, D], their 'labels'
        ['dataset.speaker'] and 'loss', the mean GE2E loss over the batches. autocast() gives the
        training's precision context."""
        encoder.eval()
        singles, multis, labels, losses, problems = [], [], [], [], {}
        try:
            for batch in self.loader:
                problems.update(batch['problems'])
                speakers = len(batch['indices'])
                if not speakers:
                    continue
                with autocast():
                    single = encoder(batch['single'].to(device, non_blocking=True)).float()   # [N * M, D]
                    multi = encoder(batch['multi'].to(device, non_blocking=True)).float()     # [N * M * S, D]
                if speakers >= 2:
                    losses.append(loss(single.view(speakers, self.utterances, -1)).item())
                multi = multi.view(speakers * self.utterances, self.samples, -1).mean(dim=1)  # [N * M, D]
                singles.append(torch.nn.functional.normalize(single, dim=1).cpu())
                multis.append(torch.nn.functional.normalize(multi, dim=1).cpu())
                labels.extend(self.dataset.label(index) for index in batch['indices'] for _ in range(self.utterances))
        finally:
            encoder.train()
        return {'single': torch.cat(singles), 'multi': torch.cat(multis), 'labels': labels,
                'loss': float(np.mean(losses)) if losses else float('nan'), 'problems': problems}

    def run(self, encoder, loss, device: torch.device, autocast, step: int, writer, log) -> dict:
        """Embed, score and log at `step`: TensorBoard scalars, t-SNE figures (also as PNG files)
        and the projector's vectors, then one line. Returns embed()'s dict with 'eer', 'eer_single'."""
        started = time.perf_counter()
        result = self.embed(encoder, loss, device, autocast)
        for file, reason in result['problems'].items():
            if file not in self.reported:
                self.reported.add(file)
                log(f'Evaluation skipped a pattern: {reason}')
        result['eer'] = pairwise_eer(result['multi'], result['labels'], EER_MAX_UTTERANCES)
        result['eer_single'] = pairwise_eer(result['single'], result['labels'], EER_MAX_UTTERANCES)
        for tag in ('loss', 'eer', 'eer_single'):
            writer.add_scalar(f'evaluation/{tag}', result[tag], step)
        shown = TSNE_SPEAKERS * self.utterances
        labels = result['labels'][:shown]
        os.makedirs(self.figures, exist_ok=True)
        for kind, title in (('single', 'one crop of Min..Max frames'), ('multi', 'multi-slice average')):
            figure = tsne_figure(result[kind][:shown].numpy(), labels, f'Step {step}: {title}')
            writer.add_figure(f'evaluation/tsne_{kind}', figure, step, close=False)
            save_figure(figure, os.path.join(self.figures, f'S{step}_{kind}.png'))
        writer.add_embedding(result['multi'][:shown], metadata=labels, global_step=step, tag='evaluation/multi_slice')
        writer.flush()
        log(f'Step {step}: evaluation loss {result["loss"]:.4f}, EER {100 * result["eer"]:.2f}% '
            f'(single crop {100 * result["eer_single"]:.2f}%) over {len(result["labels"])} utterances of '
            f'{len(dict.fromkeys(result["labels"]))} speakers, {time.perf_counter() - started:.1f} s; '
            f'figures in {self.figures}')
        return result
