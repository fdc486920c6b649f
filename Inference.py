"""Speaker embeddings, speaker vectors, t-SNE and verification scores from audio files: the seed's
entry point for ge2e_speaker/inference.py (installed as the ge2e-inference command;
docs/inference.md). The Python API's names stay importable from here (`from Inference import
load_encoder`), as they are from the package (`from ge2e_speaker import load_encoder`).

    python Inference.py -c Results/Checkpoint/S_100000.pkl -i wav_folder -o Results/Inference
"""
import sys

from ge2e_speaker.inference import (SpeakerEncoder, VerificationResult, evaluate_trials, load_encoder, main,
                                    read_trials, score_trials)

__all__ = ['SpeakerEncoder', 'load_encoder', 'VerificationResult', 'evaluate_trials', 'read_trials', 'score_trials',
           'main']

if __name__ == '__main__':
    sys.exit(main())
