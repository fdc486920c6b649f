"""GE2E (Loss.py) against a loop-by-loop transcription of the paper's equations 5-9."""
import math

import pytest
import torch

from ge2e_speaker.loss import GE2ELoss


def cosine(a, b):
    return (a * b).sum() / (a.norm() * b.norm())


def paper_loss(embeddings, w, b, loss_type, centroid):
    """Wan et al. (2017), written one utterance and one speaker at a time. Returns the mean over
    utterances (the sum of eq. 10 divided by N * M)."""
    speakers, utterances, _ = embeddings.shape
    e = [[embeddings[j, i] / embeddings[j, i].norm() for i in range(utterances)] for j in range(speakers)]
    centroids = [sum(e[k]) / utterances for k in range(speakers)]                          # eq. 1
    total = 0.0
    for j in range(speakers):
        for i in range(utterances):
            similarities = []
            for k in range(speakers):
                if k == j and centroid == 'exclusive':
                    own = sum(e[j][m] for m in range(utterances) if m != i) / (utterances - 1)   # eq. 8
                    similarities.append(w * cosine(e[j][i], own) + b)                    # eq. 9
                else:
                    similarities.append(w * cosine(e[j][i], centroids[k]) + b)           # eq. 5
            if loss_type == 'softmax':                                                   # eq. 6
                total = total - similarities[j] + torch.log(sum(torch.exp(s) for s in similarities))
            else:                                                                        # eq. 7
                others = max(torch.sigmoid(similarities[k]) for k in range(speakers) if k != j)
                total = total + 1 - torch.sigmoid(similarities[j]) + others
    return total / (speakers * utterances)


@pytest.mark.parametrize('loss_type', ['softmax', 'contrast'])
@pytest.mark.parametrize('centroid', ['exclusive', 'inclusive'])
@pytest.mark.parametrize('speakers,utterances', [(2, 2), (3, 5), (5, 3), (4, 7)])
def test_values_and_gradients_match_the_paper(loss_type, centroid, speakers, utterances):
    torch.manual_seed(speakers * 10 + utterances)
    raw = torch.randn(speakers, utterances, 6, dtype=torch.float64)
    raw[0] += 2.0                                   # one tight speaker, so the scores are not all alike
    loss = GE2ELoss(loss_type, centroid, init_w=7.5, init_b=-3.0).double()
    vectorised_input = raw.clone().requires_grad_(True)
    value = loss(vectorised_input)
    value.backward()

    reference_input = raw.clone().requires_grad_(True)
    w = torch.tensor(7.5, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(-3.0, dtype=torch.float64, requires_grad=True)
    reference = paper_loss(reference_input, w, b, loss_type, centroid)
    reference.backward()

    assert value.item() == pytest.approx(reference.item(), rel=1e-10, abs=1e-12)
    torch.testing.assert_close(vectorised_input.grad, reference_input.grad, rtol=1e-8, atol=1e-12)
    assert loss.w.grad.item() == pytest.approx(w.grad.item(), rel=1e-8, abs=1e-12)
    assert loss.b.grad.item() == pytest.approx(b.grad.item(), rel=1e-8, abs=1e-12)


def test_initial_values_and_state_names():
    loss = GE2ELoss()
    assert (loss.loss_type, loss.centroid) == ('softmax', 'exclusive')
    assert loss.w.item() == 10.0 and loss.b.item() == -5.0
    assert set(loss.state_dict()) == {'w', 'b'}
    assert {name for name, _ in loss.named_parameters()} == {'w', 'b'}


def test_w_is_kept_positive():
    loss = GE2ELoss()
    with torch.no_grad():
        loss.w.fill_(-3.0)
    similarities = loss.similarity_matrix(torch.randn(3, 4, 8))
    # With w clamped to ~0 every score is b.
    torch.testing.assert_close(similarities, torch.full_like(similarities, -5.0), atol=1e-5, rtol=0)


def test_exclusive_is_harder_than_inclusive():
    """The own-speaker score drops when the utterance is left out of its centroid."""
    torch.manual_seed(0)
    embeddings = torch.randn(4, 3, 16)
    exclusive = GE2ELoss(centroid='exclusive').similarity_matrix(embeddings)
    inclusive = GE2ELoss(centroid='inclusive').similarity_matrix(embeddings)
    own = torch.arange(4)
    assert (exclusive[own, :, own] < inclusive[own, :, own]).all()
    others = ~torch.eye(4, dtype=torch.bool).unsqueeze(1).expand(4, 3, 4)
    torch.testing.assert_close(exclusive[others], inclusive[others])


def test_perfectly_separated_speakers_have_a_small_loss():
    directions = torch.eye(8)[:4]                                     # 4 orthogonal speakers
    embeddings = directions.unsqueeze(1).repeat(1, 5, 1) + 0.01 * torch.randn(4, 5, 8)
    separated = GE2ELoss()(embeddings).item()
    mixed = GE2ELoss()(torch.randn(4, 5, 8)).item()
    assert separated < 0.05 < math.log(4) / 2 < mixed


def test_bad_settings_and_shapes_are_refused():
    with pytest.raises(ValueError, match='Train.Loss.Type'):
        GE2ELoss(loss_type='triplet')
    with pytest.raises(ValueError, match='Train.Loss.Centroid'):
        GE2ELoss(centroid='mean')
    with pytest.raises(ValueError, match='at least 2 speakers'):
        GE2ELoss()(torch.randn(1, 4, 8))
