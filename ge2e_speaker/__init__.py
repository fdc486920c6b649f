"""GE2E speaker embeddings: a trained speaker encoder and its audio recipe.

    import ge2e_speaker
    encoder = ge2e_speaker.load_encoder()                       # the example encoder shipped here
    vector = encoder.embed_file('utterance.flac')               # float32 [256], unit norm

The jobs: ge2e-pattern-generate, ge2e-train and ge2e-inference (Pattern_Generate.py, Train.py and
Inference.py in the repository). Importing the package loads torch and the audio code only;
before torch loads it sets GOMP_SPINCOUNT (unless set) so that torch's threads hold up beside a
busy core (cpu_defaults.prefer_short_openmp_spins).
"""
from .cpu_defaults import prefer_short_openmp_spins

prefer_short_openmp_spins()
from .embedding import EXAMPLE_CHECKPOINT, SpeakerEncoder, load_encoder  # noqa: E402  (after the OpenMP setting)
from .verification import VerificationResult, evaluate_trials, read_trials, score_trials  # noqa: E402

__all__ = ['load_encoder', 'SpeakerEncoder', 'EXAMPLE_CHECKPOINT', 'VerificationResult', 'evaluate_trials',
           'read_trials', 'score_trials']
