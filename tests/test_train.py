"""Train.py on a tiny synthetic corpus: learning, checkpoints and resumption, bad settings,
non-finite losses, Ctrl-C and two-process DistributedDataParallel, all on the CPU."""
import os
import signal
import struct
import subprocess
import sys
import time

import pytest
import torch

from ge2e_speaker import checkpoints, runtime, train
from ge2e_speaker.hyper_parameters import load_hyper_parameters
from fixtures.settings import save_hyper_parameters
from fixtures.patterns import write_pattern_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    """12 training speakers of 8 patterns, 6 evaluation speakers of 6; noisy enough that an
    untrained encoder confuses them."""
    root = tmp_path_factory.mktemp('corpus')
    write_pattern_corpus(str(root / 'Train'), 12, 8, frames=(60, 120), noise=2.0, seed=0)
    write_pattern_corpus(str(root / 'Eval'), 6, 6, frames=(60, 120), noise=2.0, seed=1)
    return root


def tiny_hp(corpus, run, **train_settings):
    """The project's hyper-parameters with a 32-unit encoder and small batches."""
    hp = load_hyper_parameters(os.path.join(ROOT, 'Hyper_Parameter.yaml'))
    hp.Encoder.LSTM.Sizes, hp.Encoder.Embedding_Size = 32, 32
    hp.Train.Train_Pattern.Path, hp.Train.Eval_Pattern.Path = str(corpus / 'Train'), str(corpus / 'Eval')
    hp.Train.Batch.Train.Speaker, hp.Train.Batch.Train.Pattern_per_Speaker = 4, 4
    hp.Train.Batch.Eval.Speaker, hp.Train.Batch.Eval.Pattern_per_Speaker = 6, 6
    hp.Train.Frame_Length.Min, hp.Train.Frame_Length.Max = 40, 60
    hp.Train.Inference.Samples, hp.Train.Inference.Frame_Length, hp.Train.Inference.Overlap_Length = 3, 32, 16
    hp.Train.Num_Workers = 0
    hp.Train.Learning_Rate.Initial = 1e-2
    hp.Train.Max_Step, hp.Train.Logging_Interval = 10, 5
    hp.Train.Checkpoint_Save_Interval, hp.Train.Evaluation_Interval = 5, 1000
    hp.Train.Initial_Inference = False
    hp.Checkpoint_Path, hp.Log_Path, hp.Device = str(run / 'Checkpoint'), str(run / 'Log'), '-1'
    for key, value in train_settings.items():
        setattr(hp.Train, key, value)
    return hp


def read_scalars(log_path: str) -> dict:
    """{tag: [(step, value)]} from the tensorboardX event files in log_path."""
    from tensorboardX.proto.event_pb2 import Event
    scalars = {}
    for name in sorted(os.listdir(log_path)):
        if not name.startswith('events.out.tfevents'):
            continue
        data = open(os.path.join(log_path, name), 'rb').read()
        offset = 0
        while offset < len(data):
            length = struct.unpack('<Q', data[offset:offset + 8])[0]
            event = Event.FromString(data[offset + 12:offset + 12 + length])
            offset += 12 + length + 4
            for value in event.summary.value:
                if value.HasField('simple_value'):
                    scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
    return scalars


def run_script(arguments, timeout=120, **popen):
    environment = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    return subprocess.run([sys.executable] + arguments, cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=timeout, **popen)


def test_short_training_lowers_the_loss_and_separates_speakers(corpus, tmp_path):
    hp = tiny_hp(corpus, tmp_path, Max_Step=80, Logging_Interval=20, Checkpoint_Save_Interval=40,
                 Evaluation_Interval=80, Initial_Inference=True, Num_Workers=1)
    messages = []
    trainer = train.train(hp, log=messages.append)
    assert trainer.outcome == 'finished' and trainer.steps == 80
    scalars = read_scalars(hp.Log_Path)
    train_loss = [value for _, value in scalars['train/loss']]
    assert len(train_loss) == 4 and train_loss[-1] < 0.5 * train_loss[0]
    (start, first_loss), (end, last_loss) = scalars['evaluation/loss']
    assert (start, end) == (0, 80) and last_loss < 0.7 * first_loss
    (_, first_eer), (_, last_eer) = scalars['evaluation/eer']
    assert last_eer < 0.6 * first_eer
    assert len(scalars['evaluation/eer_single']) == 2
    for tag in ('train/learning_rate', 'train/w', 'train/b', 'train/utterances_per_second', 'train/data_wait_share'):
        assert len(scalars[tag]) == 4, tag
    for step in (0, 80):
        for kind in ('single', 'multi'):
            assert os.path.getsize(os.path.join(hp.Log_Path, 'Figures', f'S{step}_{kind}.png')) > 10_000
    assert any(name.startswith('00080') for name in os.listdir(hp.Log_Path))          # the embedding projector
    assert any(hp.Log_Path in message for message in messages)                          # the run directory is named
    assert sorted(os.listdir(hp.Checkpoint_Path)) == ['Hyper_Parameter.yaml', 'S_40.pkl', 'S_80.pkl']
    assert load_hyper_parameters(os.path.join(hp.Checkpoint_Path, 'Hyper_Parameter.yaml')).Train.Max_Step == 80

    state = checkpoints.load_checkpoint(checkpoints.checkpoint_file(hp.Checkpoint_Path, 80))
    assert set(state) == {'Model', 'Optimizer', 'Scheduler', 'Steps', 'Epochs', 'Loss', 'Hyper_Parameters'}
    assert state['Hyper_Parameters']['Encoder']['LSTM']['Sizes'] == 32 and state['Hyper_Parameters']['Train']['Max_Step'] == 80
    assert state['Steps'] == 80 and state['Epochs'] == 26                                  # 3 batches an epoch
    assert set(state['Model']) == set(trainer.encoder.state_dict())
    assert all(key.startswith('layer_Dict.') for key in state['Model'])
    assert state['Loss']['w'].item() != 10.0                                               # w is trained
    assert len(state['Optimizer']['state']) == len(list(trainer.encoder.parameters())) + 2


@pytest.fixture(scope='module')
def trained(corpus, tmp_path_factory):
    """A 10-step run with checkpoints at 5 and 10 and the learning rate halved every 3 steps."""
    run = tmp_path_factory.mktemp('run')
    hp = tiny_hp(corpus, run)
    hp.Train.Learning_Rate.Decay_Step, hp.Train.Learning_Rate.Decay_Rate = 3, 0.5
    trainer = train.train(hp, log=lambda message: None)
    return hp, trainer


def test_resume_continues_exactly(trained):
    hp, finished = trained
    resumed = train.Trainer(hp, resume_step=10, log=lambda message: None)
    assert (resumed.steps, resumed.epochs) == (10, finished.epochs)
    assert resumed.scheduler.get_last_lr() == finished.scheduler.get_last_lr() == [1e-2 * 0.5 ** 3]
    assert resumed.loss.w.item() == finished.loss.w.item() and resumed.loss.b.item() == finished.loss.b.item()
    # The next step from the checkpoint equals the next step of the run that wrote it.
    mels = next(iter(finished.train_loader)).mels
    for trainer in (finished, resumed):
        trainer.train_step(mels)
    for mine, theirs in zip(resumed.optimizer.param_groups[0]['params'], finished.optimizer.param_groups[0]['params']):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)
    assert resumed.scheduler.get_last_lr() == finished.scheduler.get_last_lr()
    resumed.writer.close()


def test_resume_from_a_missing_checkpoint_lists_those_there(trained, tmp_path):
    hp, _ = trained
    save_hyper_parameters(hp, str(tmp_path / 'hp.yaml'))
    assert train.main(['-hp', str(tmp_path / 'hp.yaml'), '-s', '7']) == 1
    assert checkpoints.missing_checkpoint_message(hp.Checkpoint_Path, 7) == (
        f'{hp.Checkpoint_Path}/S_7.pkl: no such checkpoint; checkpoints there: S_5.pkl, S_10.pkl '
        f'(resume the last with -s 10)')
    assert 'no checkpoints there' in checkpoints.missing_checkpoint_message(str(tmp_path / 'nothing'), 7)


def test_a_seed_checkpoint_resumes(corpus, tmp_path):
    """The seed saved no w and b, and its optimiser knew only the encoder's parameters."""
    hp = tiny_hp(corpus, tmp_path)
    seed = train.Trainer(hp, log=lambda message: None)
    optimizer = torch.optim.RAdam(seed.encoder.parameters(), lr=1e-3, eps=1e-7)
    seed.encoder(torch.randn(2, 80, 30)).sum().backward()
    optimizer.step()
    optimizer_state = optimizer.state_dict()
    for parameter_state in optimizer_state['state'].values():
        parameter_state['step'] = int(parameter_state['step'])                  # the seed's RAdam kept ints
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10000, 0.5)
    torch.save({'Model': seed.encoder.state_dict(), 'Optimizer': optimizer_state, 'Scheduler': scheduler.state_dict(),
                'Steps': 7, 'Epochs': 2}, checkpoints.checkpoint_file(hp.Checkpoint_Path, 7))
    messages = []
    resumed = train.Trainer(hp, resume_step=7, log=messages.append)
    assert (resumed.steps, resumed.epochs) == (7, 2) and resumed.loss.w.item() == 10.0
    assert any("no GE2E w and b" in message for message in messages)
    loss, _ = resumed.train_step(next(iter(resumed.train_loader)).mels)
    assert loss is not None and resumed.steps == 8 and resumed.loss.w.item() != 10.0
    seed.writer.close()
    resumed.writer.close()


def test_init_fine_tunes_from_another_runs_checkpoint(trained, corpus, tmp_path):
    """--init: the other run's encoder, w and b at step 0, a fresh optimiser and schedule, its own folder."""
    hp, _ = trained
    source = checkpoints.checkpoint_file(hp.Checkpoint_Path, 10)
    new_hp = tiny_hp(corpus, tmp_path, Max_Step=3)
    save_hyper_parameters(new_hp, str(tmp_path / 'hp.yaml'))
    messages = []
    tuned = train.Trainer(new_hp, log=messages.append, init_checkpoint=source)
    assert tuned.steps == 0 and tuned.epochs == 0
    saved = checkpoints.load_checkpoint(source)
    for name, tensor in saved['Model'].items():
        torch.testing.assert_close(tuned.encoder.state_dict()[name], tensor, rtol=0, atol=0)
    assert tuned.loss.w.item() == saved['Loss']['w'].item() and tuned.loss.b.item() == saved['Loss']['b'].item()
    assert tuned.optimizer.state_dict()['state'] == {} and tuned.scheduler.get_last_lr() == [1e-2]
    assert any(f'Fine-tuning from {source} (its step 10)' in message for message in messages)
    tuned.writer.close()
    assert train.main(['-hp', str(tmp_path / 'hp.yaml'), '--init', source]) == 0
    assert sorted(os.listdir(new_hp.Checkpoint_Path)) == ['Hyper_Parameter.yaml', 'S_3.pkl']
    assert checkpoints.load_checkpoint(checkpoints.checkpoint_file(new_hp.Checkpoint_Path, 3))['Steps'] == 3


def test_init_from_a_seed_layout_checkpoint(corpus, tmp_path):
    """A seed checkpoint: 'Model' saved through DataParallel ('module.' names), no w and b."""
    hp = tiny_hp(corpus, tmp_path)
    donor = train.Trainer(hp, log=lambda message: None)
    torch.nn.init.normal_(donor.encoder.layer_Dict['Linear'].weight)
    path = str(tmp_path / 'seed' / 'S_100000.pkl')
    os.makedirs(os.path.dirname(path))
    torch.save({'Model': {f'module.{name}': tensor for name, tensor in donor.encoder.state_dict().items()},
                'Steps': 100000, 'Epochs': 9}, path)
    messages = []
    tuned = train.Trainer(tiny_hp(corpus, tmp_path / 'tuned'), log=messages.append, init_checkpoint=path)
    torch.testing.assert_close(tuned.encoder.layer_Dict['Linear'].weight, donor.encoder.layer_Dict['Linear'].weight)
    assert tuned.steps == 0 and tuned.loss.w.item() == 10.0
    assert any('no w and b in it' in message for message in messages)
    donor.writer.close()
    tuned.writer.close()


def test_init_with_another_shape_or_with_s_says_what_to_do(trained, corpus, tmp_path, capsys):
    hp, _ = trained
    other = tiny_hp(corpus, tmp_path)
    other.Encoder.LSTM.Sizes = 48
    save_hyper_parameters(other, str(tmp_path / 'hp.yaml'))
    source = checkpoints.checkpoint_file(hp.Checkpoint_Path, 10)
    assert train.main(['-hp', str(tmp_path / 'hp.yaml'), '--init', source]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f'Train.py: --init {source}: ') and 'Encoder.LSTM.Sizes 48' in error
    assert 'Traceback' not in error
    with pytest.raises(SystemExit):
        train.main(['-hp', str(tmp_path / 'hp.yaml'), '--init', source, '-s', '5'])
    assert '-s resumes this run and --init starts a new one' in capsys.readouterr().err


def test_too_few_speakers_stops_with_a_how_to(corpus, tmp_path, capsys):
    hp = tiny_hp(corpus, tmp_path)
    hp.Train.Batch.Train.Speaker = 20
    save_hyper_parameters(hp, str(tmp_path / 'hp.yaml'))
    assert train.main(['-hp', str(tmp_path / 'hp.yaml')]) == 1
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and 'Traceback' not in error
    assert '12 speakers have at least 4 patterns' in error
    assert 'Set Train.Batch.Train.Speaker to 12 or less' in error


def test_missing_training_metadata_stops_with_a_how_to(corpus, tmp_path, capsys):
    hp = tiny_hp(corpus, tmp_path)
    hp.Train.Train_Pattern.Path = str(tmp_path / 'nowhere')
    save_hyper_parameters(hp, str(tmp_path / 'hp.yaml'))
    assert train.main(['-hp', str(tmp_path / 'hp.yaml')]) == 1
    error = capsys.readouterr().err
    assert 'nowhere/METADATA.PICKLE: no metadata file' in error and 'Pattern_Generate.py' in error
    assert train.main(['-hp', str(tmp_path / 'missing.yaml')]) == 1
    assert 'no such hyper-parameter file' in capsys.readouterr().err


def test_missing_evaluation_metadata_trains_without_evaluation(corpus, tmp_path):
    hp = tiny_hp(corpus, tmp_path, Max_Step=2, Initial_Inference=True, Evaluation_Interval=1)
    hp.Train.Eval_Pattern.Path = str(tmp_path / 'no-eval')
    messages = []
    trainer = train.train(hp, log=messages.append)
    assert trainer.outcome == 'finished' and trainer.steps == 2
    assert any('no metadata file' in message and 'without evaluation' in message for message in messages)
    assert not os.path.exists(os.path.join(hp.Log_Path, 'Figures'))


@pytest.mark.parametrize('loss_scaling', [False, True], ids=['float32', 'loss-scaling'])
def test_non_finite_losses_are_skipped_and_ten_in_a_row_stop(corpus, tmp_path, loss_scaling):
    hp = tiny_hp(corpus, tmp_path, Max_Step=4, Checkpoint_Save_Interval=1000)
    messages = []
    trainer = train.Trainer(hp, log=messages.append)
    if loss_scaling:            # as with Mixed_Precision on CUDA, here on the CPU
        trainer.scaler = torch.amp.GradScaler('cpu', enabled=True)
    compute = trainer.loss.forward
    calls = {'count': 0}

    def sometimes_nan(embeddings):
        calls['count'] += 1
        loss = compute(embeddings)
        return loss * float('nan') if calls['count'] == 2 or calls['count'] > 4 else loss

    trainer.loss.forward = sometimes_nan
    before = [parameter.clone() for parameter in trainer.encoder.parameters()]
    with pytest.raises(train.TrainingError) as error:
        trainer.run()
    assert 'not finite in 10 steps in a row' in str(error.value) and 'no checkpoint was written' in str(error.value)
    assert trainer.steps == 3 and trainer.nonfinite.skipped == 11          # call 2 and calls 5-14 were skipped
    assert any(message.startswith('Step 2: non-finite loss') for message in messages)
    assert not any(name.startswith('S_') for name in os.listdir(hp.Checkpoint_Path))
    after = trainer.encoder.state_dict()
    assert all(torch.isfinite(value).all() for value in after.values())
    assert any(not torch.equal(old, new) for old, new in zip(before, trainer.encoder.parameters()))


def start_training(hp, folder, seconds: float = 1.5) -> subprocess.Popen:
    """Train.py -hp <folder>/hp.yaml in a process of its own, `seconds` after its first steps."""
    save_hyper_parameters(hp, str(folder / 'hp.yaml'))
    environment = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    process = subprocess.Popen([sys.executable, 'Train.py', '-hp', str(folder / 'hp.yaml')], cwd=ROOT,
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (os.path.isdir(hp.Log_Path) and os.listdir(hp.Log_Path)) and time.time() < deadline:
        time.sleep(0.2)                                      # the run has started when its log appears
    time.sleep(seconds)                                      # some steps
    return process


def test_ctrl_c_saves_and_exits_cleanly(corpus, tmp_path):
    hp = tiny_hp(corpus, tmp_path, Max_Step=1_000_000, Checkpoint_Save_Interval=1_000_000, Logging_Interval=1)
    process = start_training(hp, tmp_path)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert 'Traceback' not in stderr
    steps = checkpoints.list_checkpoints(hp.Checkpoint_Path)
    assert len(steps) == 1 and steps[0] > 0
    assert f'SIGINT: stopped at step {steps[0]}; resume with: python Train.py -hp {tmp_path}/hp.yaml -s {steps[0]}' in stdout
    assert checkpoints.load_checkpoint(checkpoints.checkpoint_file(hp.Checkpoint_Path, steps[0]))['Steps'] == steps[0]


def test_two_processes_with_gloo(corpus, tmp_path):
    hp = tiny_hp(corpus, tmp_path, Max_Step=6, Checkpoint_Save_Interval=3, Evaluation_Interval=6, Num_Workers=1)
    hp.Train.Batch.Train.Speaker = 3                        # 2 x 3 of the 12 speakers per step
    save_hyper_parameters(hp, str(tmp_path / 'hp.yaml'))
    result = run_script(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                         'Train.py', '-hp', str(tmp_path / 'hp.yaml')], timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count('Run directory') == 1          # only rank 0 logs
    assert result.stdout.count('Finished training at step 6') == 1
    assert checkpoints.list_checkpoints(hp.Checkpoint_Path) == [3, 6]
    state = checkpoints.load_checkpoint(checkpoints.checkpoint_file(hp.Checkpoint_Path, 6))
    assert all(key.startswith('layer_Dict.') for key in state['Model'])     # no 'module.' prefix
    assert state['Loss']['w'].item() != 10.0
    assert os.path.isfile(os.path.join(hp.Log_Path, 'Figures', 'S6_multi.png'))
    # Too few speakers for 2 processes x 7: the how-to names the processes.
    hp.Train.Batch.Train.Speaker, hp.Checkpoint_Path = 7, str(tmp_path / 'Checkpoint-2')
    save_hyper_parameters(hp, str(tmp_path / 'hp.yaml'))
    result = run_script(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
                         'Train.py', '-hp', str(tmp_path / 'hp.yaml')], timeout=180)
    assert result.returncode != 0 and 'a batch takes 7 x 2 processes speakers' in result.stderr


def test_device_falls_back_to_the_cpu_with_a_warning():
    messages = []
    assert checkpoints.select_device('-1', warn=messages.append) == torch.device('cpu') and not messages
    assert checkpoints.select_device('0', requested='cpu', warn=messages.append) == torch.device('cpu') and not messages
    if not torch.cuda.is_available():
        assert checkpoints.select_device('0', local_rank=0, warn=messages.append) == torch.device('cpu')
        assert "Device is '0' but CUDA is not available" in messages[0]


@pytest.mark.skipif(not runtime.cpu_has_bfloat16(), reason='this CPU has no native bfloat16')
def test_mixed_precision_on_the_cpu_trains_in_bfloat16(corpus, tmp_path):
    hp = tiny_hp(corpus, tmp_path, Max_Step=6, Checkpoint_Save_Interval=6, Mixed_Precision=True)
    trainer = train.train(hp, log=lambda message: None)
    assert trainer.mixed_precision and trainer.autocast_dtype == torch.bfloat16 and not trainer.scaler.is_enabled()
    state = checkpoints.load_checkpoint(checkpoints.checkpoint_file(hp.Checkpoint_Path, 6))
    assert 'Scaler' not in state and all(value.dtype == torch.float32 for value in state['Model'].values())
    assert all(torch.isfinite(value).all() for value in state['Model'].values())


@pytest.mark.parametrize('native_bfloat16', [False, True])
def test_a_cpu_without_bfloat16_trains_in_float32_with_the_chosen_counts(corpus, tmp_path, monkeypatch, native_bfloat16):
    monkeypatch.setattr(train.runtime, 'cpu_has_bfloat16', lambda: native_bfloat16)
    monkeypatch.setattr(train.cpu_defaults, 'usable_cores', lambda: 2)
    messages = []
    hp = tiny_hp(corpus, tmp_path, Max_Step=1, Mixed_Precision=True, Num_Workers='auto')
    trainer = train.Trainer(hp, log=messages.append)
    assert trainer.mixed_precision is native_bfloat16
    assert trainer.num_workers == 0 and trainer.train_loader.num_workers == 0
    assert any(f'CPU training in {"bfloat16" if native_bfloat16 else "float32"}' in message for message in messages)
    assert ('no native bfloat16' in ' '.join(messages)) is not native_bfloat16
