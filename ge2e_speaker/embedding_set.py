"""The files of an embedding run, written row by row: embeddings.npy, embeddings_index.tsv,
skipped.tsv, then speaker_embeddings.pickle and tsne.png. Inference.py's -i pass writes them
from the encoder, `--merge` (shards.py) from the parts of a run made on several machines; the
same rows in the same order give the same files."""
import os
import pickle

import numpy as np
from tqdm import tqdm

from .embedding import normalise
from .inputs import UNLABELLED
from .npy_writer import NpyRowWriter
from .plots import plot_tsne

TSNE_LABELS = 30            # the t-SNE figure shows at most this many labels,
TSNE_PER_LABEL = 20         # and at most this many utterances of each
ROW_FILES = ('embeddings.npy', 'embeddings_index.tsv', 'skipped.tsv')


class EmbeddingSet:
    """Writes one run's rows into out_dir: `add` an embedded file, `skip` one that is not,
    `close` for the speaker vectors (each label's float64 sum of its rows, re-normalised) and
    the t-SNE figure of the first TSNE_LABELS labels' first TSNE_PER_LABEL rows."""

    def __init__(self, out_dir: str, columns: int, announce: bool = True):
        self.out_dir, self.announce = out_dir, announce
        self.rows = NpyRowWriter(os.path.join(out_dir, 'embeddings.npy'), columns)
        self.index = open(os.path.join(out_dir, 'embeddings_index.tsv'), 'w', encoding='utf-8')
        self.skipped = open(os.path.join(out_dir, 'skipped.tsv'), 'w', encoding='utf-8')
        self.index.write('path\tlabel\n')
        self.skipped.write('path\treason\n')
        self.speaker_sums = {}
        self.sample_vectors, self.sample_labels, self.sample_counts = [], [], {}
        self.reasons = {}

    def add(self, path: str, label: str, vector: np.ndarray) -> None:
        """A row: vector float32 [E], unit norm."""
        self.rows.append(vector)
        self.index.write(f'{path}\t{label}\n')
        if label != UNLABELLED:
            self.speaker_sums[label] = self.speaker_sums.get(label, 0.0) + vector.astype(np.float64)
        counts = self.sample_counts
        if (label in counts or len(counts) < TSNE_LABELS) and counts.get(label, 0) < TSNE_PER_LABEL:
            counts[label] = counts.get(label, 0) + 1
            self.sample_vectors.append(vector)
            self.sample_labels.append(label)

    def skip(self, path: str, reason: str) -> None:
        self.reasons[path] = reason
        self.skipped.write(f'{path}\t{reason}\n')
        if self.announce:
            tqdm.write(f'skipped {path}: {reason}')

    def close_rows(self) -> int:
        """Finishes embeddings.npy, the index and skipped.tsv; returns the rows written."""
        self.index.close()
        self.skipped.close()
        self.rows.close()
        return self.rows.rows

    def close(self, plot: bool, title: str) -> int:
        """close_rows, then speaker_embeddings.pickle ({label: float32 [E]}) and, with plot,
        tsne.png; returns the rows written."""
        rows = self.close_rows()
        speakers = {label: normalise(total) for label, total in self.speaker_sums.items()}
        with open(os.path.join(self.out_dir, 'speaker_embeddings.pickle'), 'wb') as stream:
            pickle.dump(speakers, stream, protocol=4)
        if plot and not plot_tsne(np.array(self.sample_vectors), self.sample_labels,
                                  os.path.join(self.out_dir, 'tsne.png'), title):
            print('tsne.png not drawn: fewer than 5 utterances')
        return rows
