"""Train the speaker encoder with the GE2E loss: the seed's entry point for ge2e_speaker/train.py
(installed as the ge2e-train command; docs/train.md).

    python Train.py [-hp Hyper_Parameter.yaml] [-s STEP] [--init CHECKPOINT]
    torchrun --nproc_per_node=GPUS Train.py [-hp ...] [-s STEP]      # DistributedDataParallel
"""
import sys

from ge2e_speaker.train import main

if __name__ == '__main__':
    sys.exit(main())
