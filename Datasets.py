"""Speaker x utterance datasets and batches under the seed's module name (`from Datasets import
SpeakerDataset`); they live in ge2e_speaker/datasets.py."""
from ge2e_speaker.datasets import (DatasetConfigurationError, EvalCollater, SpeakerDataset, TrainCollater, TrainingBatch,
                                   UnusablePattern, check_enough_speakers, load_speaker_dataset, make_loader)

__all__ = ['SpeakerDataset', 'load_speaker_dataset', 'check_enough_speakers', 'make_loader', 'TrainCollater',
           'EvalCollater', 'TrainingBatch', 'DatasetConfigurationError', 'UnusablePattern']
