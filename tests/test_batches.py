"""batches.py: the packed store's training batches follow the rules, whatever the threads; the
trainer reads them, resumes them exactly, falls back to the pickles, and stops without hanging."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from ge2e_speaker import batches, checkpoints, datasets, pattern_store, slicing, train
from ge2e_speaker.patterns import load_metadata, load_pickle
from fixtures.patterns import write_pattern_corpus
from fixtures.settings import save_hyper_parameters
from test_train import run_script, tiny_hp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUIET = dict(log=lambda message: None)


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    """Packed: 12 training speakers of 8 patterns of 30-120 frames (some shorter than a crop), 6 evaluation speakers."""
    root = tmp_path_factory.mktemp('corpus')
    write_pattern_corpus(str(root / 'Train'), 12, 8, frames=(30, 120), noise=2.0, seed=0)
    write_pattern_corpus(str(root / 'Eval'), 6, 6, frames=(60, 120), noise=2.0, seed=1)
    pattern_store.pack(str(root / 'Train'), **QUIET)
    return root


def store_dataset(root, utterances=4) -> datasets.SpeakerDataset:
    store, reason = pattern_store.open_store(root)
    assert reason is None
    return datasets.SpeakerDataset(root, load_metadata(root, 'METADATA.PICKLE'), utterances, store=store)


def epochs(loader, count: int = 2) -> list:
    return [batch.clone() for _ in range(count) for batch in loader]


def test_batches_follow_the_rules(corpus):
    """Speaker order from (seed, epoch); per batch, from (seed, epoch, batch, rank): the frame length,
    each speaker's patterns without replacement, each crop's offset; short patterns reflect-padded."""
    root = str(corpus / 'Train')
    dataset = store_dataset(root)
    seed, speakers, low, high = 5, 3, 40, 60
    drawn = epochs(batches.StoreBatches(dataset, speakers, low, high, threads=2, seed=seed))
    assert len(drawn) == 2 * 4
    padded = 0
    for epoch in range(2):
        order = np.random.default_rng([seed, epoch]).permutation(12)
        for index in range(4):
            generator = np.random.default_rng([seed, epoch, index, 0])
            length = int(generator.integers(low, high + 1))
            mels = []
            for speaker in order[index * speakers:(index + 1) * speakers]:
                files = dataset.starts[speaker] + generator.choice(8, size=4, replace=False)
                mels += [load_pickle(os.path.join(root, datasets.pattern_key(dataset.files[file].decode(), 'SYN')))['Mel']
                         for file in files]
            offsets = generator.integers(0, np.maximum([len(mel) - length for mel in mels], 0) + 1)
            expected = np.stack([slicing.crop_or_pad(mel, length, offset) for mel, offset in zip(mels, offsets)])
            padded += sum(len(mel) < length for mel in mels)
            batch = drawn[epoch * 4 + index]
            assert batch.shape == (speakers * 4, 80, length)                      # [speakers * utterances, mel_dim, frames]
            assert batch.permute(2, 0, 1).is_contiguous()                         # frame-major memory
            assert torch.equal(batch, torch.from_numpy(expected).transpose(1, 2))
    assert padded > 0


def test_batches_do_not_depend_on_the_threads(corpus):
    dataset = store_dataset(str(corpus / 'Train'))
    reference = epochs(batches.StoreBatches(dataset, 3, 40, 60, threads=0))
    for threads in (1, 3):
        assert all(torch.equal(mine, theirs)
                   for mine, theirs in zip(epochs(batches.StoreBatches(dataset, 3, 40, 60, threads)), reference))


def test_ranks_share_the_speakers(corpus):
    dataset = store_dataset(str(corpus / 'Train'))
    shares = []
    for rank in range(2):
        sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=2, rank=rank, drop_last=True)
        loader = batches.StoreBatches(dataset, 3, 40, 60, threads=1, sampler=sampler)
        assert len(loader) == 2 and len(epochs(loader, 1)) == 2
        shares.append(set(loader._order(0).tolist()))
    assert not shares[0] & shares[1] and len(shares[0] | shares[1]) == 12


def test_a_thread_error_reaches_the_trainer(corpus, monkeypatch):
    dataset = store_dataset(str(corpus / 'Train'))
    monkeypatch.setattr(batches, 'draw_batch', lambda *arguments: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        next(iter(batches.StoreBatches(dataset, 3, 40, 60, threads=2)))


def test_dropping_the_batches_stops_the_threads(corpus):
    loader = batches.StoreBatches(store_dataset(str(corpus / 'Train')), 3, 40, 60, threads=2)
    next(iter(loader))
    threads = loader._pipeline.threads
    del loader
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)


def test_the_trainer_reads_the_store_and_resumes_exactly(corpus, tmp_path):
    hp = tiny_hp(corpus, tmp_path, Max_Step=5, Num_Workers=2)
    finished = train.train(hp, **QUIET)
    assert isinstance(finished.train_loader, batches.StoreBatches) and finished.steps == 5
    state = checkpoints.load_checkpoint(checkpoints.checkpoint_file(hp.Checkpoint_Path, 5))
    assert state['Batches'] == {'epoch': 1, 'batch': 2} and state['Epochs'] == 1          # 3 batches an epoch
    resumed = train.Trainer(hp, resume_step=5, **QUIET)
    expected = next(iter(finished.train_loader)).clone()
    assert torch.equal(next(iter(resumed.train_loader)), expected)
    loss, _ = resumed.train_step(expected)
    assert loss is not None and np.isfinite(loss) and resumed.steps == 6
    resumed.writer.close()


def test_a_stale_or_absent_store_falls_back_to_the_pickles(corpus, tmp_path):
    root = tmp_path / 'corpus'
    shutil.copytree(corpus, root)
    hp = tiny_hp(root, tmp_path)
    trainer = train.Trainer(hp, **QUIET)
    assert isinstance(trainer.train_loader, batches.StoreBatches)
    trainer.writer.close()
    os.remove(os.path.join(root, 'Train', load_metadata(str(root / 'Train'), 'METADATA.PICKLE')['File_List'][0]))
    messages = []
    trainer = train.Trainer(hp, log=messages.append)                  # the folder changed: the store is stale
    assert isinstance(trainer.train_loader, torch.utils.data.DataLoader)
    assert any('Reading the pattern pickles meanwhile' in message for message in messages)
    trainer.writer.close()
    shutil.rmtree(pattern_store.store_folder(str(root / 'Train')))
    trainer = train.Trainer(hp, **QUIET)
    assert isinstance(trainer.train_loader, torch.utils.data.DataLoader)
    trainer.writer.close()


def test_sigint_stops_the_store_path_without_hanging(corpus, tmp_path):
    hp = tiny_hp(corpus, tmp_path, Max_Step=1_000_000, Checkpoint_Save_Interval=1_000_000, Num_Workers=2)
    save_hyper_parameters(hp, str(tmp_path / 'hp.yaml'))
    process = subprocess.Popen([sys.executable, 'Train.py', '-hp', str(tmp_path / 'hp.yaml')], cwd=ROOT,
                               env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1'),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (os.path.isdir(hp.Log_Path) and os.listdir(hp.Log_Path)) and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and 'Traceback' not in stderr, stderr
    assert 'reading its packed store' in stdout
    steps = checkpoints.list_checkpoints(hp.Checkpoint_Path)
    assert len(steps) == 1 and 'Batches' in checkpoints.load_checkpoint(checkpoints.checkpoint_file(hp.Checkpoint_Path, steps[0]))


def test_two_processes_read_the_store(corpus, tmp_path):
    hp = tiny_hp(corpus, tmp_path, Max_Step=4, Checkpoint_Save_Interval=4, Evaluation_Interval=1000, Num_Workers=1)
    hp.Train.Batch.Train.Speaker = 3
    save_hyper_parameters(hp, str(tmp_path / 'hp.yaml'))
    result = run_script(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                         'Train.py', '-hp', str(tmp_path / 'hp.yaml')], timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'reading its packed store' in result.stdout and result.stdout.count('Finished training at step 4') == 1
    state = checkpoints.load_checkpoint(checkpoints.checkpoint_file(hp.Checkpoint_Path, 4))
    assert state['Batches'] == {'epoch': 1, 'batch': 2} and state['Epochs'] == 1          # 2 batches a rank and epoch
