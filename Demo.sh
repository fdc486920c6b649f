#!/usr/bin/env bash
# From nothing to a trained speaker encoder, on synthetic voices that need no download:
# set-up, demo corpus, patterns, fine-tuning of the shipped real-voices encoder (2-4 minutes on a
# 2-core CPU), then embeddings, verification (EER) and t-SNE figures of speakers it never heard.
set -euo pipefail
cd "$(dirname "$0")"
HP=${HP:-demo_corpus/Hyper_Parameter_Demo.yaml}
INIT=${INIT:-Example_Results/Real_Voices_v2/S_4000.pkl}     # the encoder the demo fine-tunes (round 2 of the real-voices example)
CORPUS=Demo/Corpus

bash setup.sh
python -m demo_corpus -o "$CORPUS"
python Pattern_Generate.py -hp "$HP" -vctk "$CORPUS/VCTK" -vc1t "$CORPUS/VC1_Test"
if [ -d Demo/Checkpoint ] || [ -d Demo/Log ]; then
    echo "Demo.sh: a new demo run: the previous demo's Demo/Checkpoint and Demo/Log are replaced"
    rm -rf Demo/Checkpoint Demo/Log
fi
python Train.py -hp "$HP" --init "$INIT"
CHECKPOINT=$(ls Demo/Checkpoint/S_*.pkl | sort -t_ -k2 -n | tail -n 1)
for SLICES in multi single; do
    python Inference.py -c "$CHECKPOINT" -hp "$HP" --slices "$SLICES" -i "$CORPUS/VC1_Test/wav" \
        --trials "$CORPUS/VC1_Test/trials.txt" --root "$CORPUS/VC1_Test/wav" -o "Demo/Inference/$SLICES"
done

python - "$CHECKPOINT" "$SECONDS" <<'PY'
import json, sys
print(f'\nDemo finished in {int(sys.argv[2]) // 60} min {int(sys.argv[2]) % 60} s.')
print(f'  corpus:       Demo/Corpus (training speakers in VCTK/, held-out speakers and trials.txt in VC1_Test/)')
print(f'  patterns:     Demo/Patterns/Train, Demo/Patterns/Eval')
print(f'  checkpoint:   {sys.argv[1]}  (TensorBoard: tensorboard --logdir Demo/Log)')
for slices in ('multi', 'single'):
    result = json.load(open(f'Demo/Inference/{slices}/verification.json'))
    print(f'  {slices:6} slice: EER {result["eer_percent"]:.2f} %, minDCF {result["min_dcf"]:.4f} over '
          f'{result["trials_scored"]} held-out trials; embeddings and t-SNE in Demo/Inference/{slices}/ (tsne.png)')
PY
