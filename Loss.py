"""The GE2E loss under the seed's module name (`from Loss import GE2ELoss`); it lives in
ge2e_speaker/loss.py."""
from ge2e_speaker.loss import CENTROIDS, LOSS_TYPES, EncoderWithLoss, GE2ELoss

__all__ = ['GE2ELoss', 'EncoderWithLoss', 'LOSS_TYPES', 'CENTROIDS']
