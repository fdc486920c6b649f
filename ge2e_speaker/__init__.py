"""GE2E speaker embeddings: a trained speaker encoder and its audio recipe.

    import ge2e_speaker
    encoder = ge2e_speaker.load_encoder()                       # the example encoder shipped here
    vector = encoder.embed_file('utterance.flac')               # float32 [256], unit norm

The jobs: ge2e-pattern-generate, ge2e-train and ge2e-inference (Pattern_Generate.py, Train.py and
Inference.py in the repository). Importing the package loads torch and the audio code only.
"""
from .embedding import EXAMPLE_CHECKPOINT, SpeakerEncoder, load_encoder
from .verification import VerificationResult, evaluate_trials, read_trials, score_trials

__all__ = ['load_encoder', 'SpeakerEncoder', 'EXAMPLE_CHECKPOINT', 'VerificationResult', 'evaluate_trials',
           'read_trials', 'score_trials']
