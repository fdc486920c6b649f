"""The generalised end-to-end (GE2E) loss of Wan et al. (2017), "Generalized end-to-end loss
for speaker verification", section 2.

Embeddings come as [N speakers, M utterances, D]. Each utterance e_ji is scored against every
speaker's centroid c_k by a scaled cosine similarity, S_ji,k = w cos(e_ji, c_k) + b (eq. 5),
and the loss pulls it towards its own speaker's centroid and away from the others (eq. 6, 7).

The paper's own-speaker centroid leaves the scored utterance out (eq. 8, 9: "exclusive"); the
seed included it ("inclusive"), which lets an utterance partly match itself and makes the task
easier and the gradient weaker, the more so the fewer utterances a speaker has. Exclusive is the
default; inclusive is kept to reproduce the seed.
"""
import torch

LOSS_TYPES = ('softmax', 'contrast')
CENTROIDS = ('exclusive', 'inclusive')


class GE2ELoss(torch.nn.Module):
    """GE2E loss with a learnable scale w (init 10, kept positive) and bias b (init -5).

    forward(embeddings [N, M, D]) -> the mean loss over the N * M utterances (a scalar).
    Embeddings are raw encoder outputs; they are L2-normalised here, as in the paper.
    """

    def __init__(self, loss_type: str = 'softmax', centroid: str = 'exclusive',
                 init_w: float = 10.0, init_b: float = -5.0, min_w: float = 1e-6):
        super().__init__()
        if loss_type not in LOSS_TYPES:
            raise ValueError(f'Train.Loss.Type must be one of {LOSS_TYPES}, not {loss_type!r}')
        if centroid not in CENTROIDS:
            raise ValueError(f'Train.Loss.Centroid must be one of {CENTROIDS}, not {centroid!r}')
        self.loss_type = loss_type
        self.centroid = centroid
        self.min_w = min_w
        self.w = torch.nn.Parameter(torch.tensor(float(init_w)))
        self.b = torch.nn.Parameter(torch.tensor(float(init_b)))

    @classmethod
    def from_hyper_parameters(cls, hp) -> 'GE2ELoss':
        return cls(hp.Train.Loss.Type, hp.Train.Loss.Centroid)

    def similarity_matrix(self, embeddings: torch.Tensor) -> torch.Tensor:
        """S_ji,k of eq. 5 (exclusive: eq. 9): [N, M, D] -> [N, M, N]."""
        speakers, utterances, _ = embeddings.shape
        if speakers < 2 or utterances < 2:
            raise ValueError(f'GE2E needs at least 2 speakers of at least 2 utterances each, got {speakers} x {utterances}')
        embeddings = embeddings.to(torch.promote_types(embeddings.dtype, torch.float32))   # half -> float32
        embeddings = torch.nn.functional.normalize(embeddings, dim=-1)
        sums = embeddings.sum(dim=1)                                                # [N, D]
        centroids = torch.nn.functional.normalize(sums, dim=-1)                     # [N, D]; the mean's direction
        cosines = torch.einsum('jid,kd->jik', embeddings, centroids)                # [N, M, N]
        if self.centroid == 'exclusive':
            # Own centroid without the scored utterance: (sum_j - e_ji) / (M - 1), as a direction.
            own = torch.nn.functional.normalize(sums.unsqueeze(1) - embeddings, dim=-1)   # [N, M, D]
            own_cosines = (embeddings * own).sum(dim=-1)                            # [N, M]
            is_own = torch.eye(speakers, dtype=torch.bool, device=embeddings.device).unsqueeze(1)   # [N, 1, N]
            cosines = torch.where(is_own, own_cosines.unsqueeze(-1), cosines)
        w = self.w.clamp(min=self.min_w)                                            # the paper keeps w > 0
        return w * cosines + self.b

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        with torch.autocast(embeddings.device.type, enabled=False):
            similarities = self.similarity_matrix(embeddings)                       # [N, M, N]
            speakers, utterances, _ = similarities.shape
            targets = torch.arange(speakers, device=similarities.device).repeat_interleave(utterances)
            flat = similarities.reshape(speakers * utterances, speakers)            # [N * M, N]
            if self.loss_type == 'softmax':                                         # eq. 6
                return torch.nn.functional.cross_entropy(flat, targets)
            # Contrast, eq. 7: 1 - sigmoid(S_ji,j) + max_{k != j} sigmoid(S_ji,k).
            probabilities = torch.sigmoid(flat)
            own = probabilities.gather(1, targets.unsqueeze(1)).squeeze(1)          # [N * M]
            others = probabilities.masked_fill(
                torch.nn.functional.one_hot(targets, speakers).bool(), 0.0).amax(dim=1)   # [N * M]
            return (1.0 - own + others).mean()


class EncoderWithLoss(torch.nn.Module):
    """The encoder and the GE2E loss as one module, so that DistributedDataParallel averages the
    gradients of w and b along with the encoder's."""

    def __init__(self, encoder: torch.nn.Module, loss: GE2ELoss, utterances_per_speaker: int):
        super().__init__()
        self.encoder, self.loss = encoder, loss
        self.utterances_per_speaker = utterances_per_speaker

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        embeddings = self.encoder(mels)                                              # [N * M, D]
        return self.loss(embeddings.view(-1, self.utterances_per_speaker, embeddings.size(-1)))   # [N, M, D]
