"""Figures: the t-SNE map of embeddings that Inference.py draws and Train.py logs, the
verification figures beside verification.json (DET curve, score histograms) and the timeline
of a recording against reference speakers."""
import numpy as np

from . import metrics


def tsne_figure(vectors: np.ndarray, labels: list, title: str):
    """A matplotlib figure: t-SNE of vectors [n >= 3, E], coloured and shaped by label, legend beside."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE
    points = TSNE(n_components=2, perplexity=min(30.0, max(2.0, (len(vectors) - 1) / 3)), init='pca',
                  random_state=0).fit_transform(vectors)                                     # [n, 2]
    names = list(dict.fromkeys(labels))
    colours = plt.get_cmap('tab10').colors
    markers = 'os^DvP*X'
    figure, axes = plt.subplots(figsize=(11, 8))
    for number, name in enumerate(names):
        chosen = np.array([label == name for label in labels])
        axes.scatter(points[chosen, 0], points[chosen, 1], s=18, color=colours[number % 10],
                     marker=markers[(number // 10) % len(markers)], label=name or '(no label)')
    axes.set_title(title)
    axes.set_xticks([])
    axes.set_yticks([])
    axes.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize='small', markerscale=1.2,
                ncol=1 if len(names) <= 15 else 2, frameon=False)
    return figure


def save_figure(figure, path: str) -> None:
    """A figure as a PNG at path (120 dpi), then closed."""
    import matplotlib.pyplot as plt
    figure.savefig(path, dpi=120, bbox_inches='tight')
    plt.close(figure)


def plot_tsne(vectors: np.ndarray, labels: list, path: str, title: str) -> bool:
    """tsne_figure saved as a PNG at path; False (nothing drawn) when n < 5."""
    if len(vectors) < 5:
        return False
    save_figure(tsne_figure(vectors, labels, title), path)
    return True


def det_figure(scores: np.ndarray, targets: np.ndarray, title: str):
    """The DET curve of trial scores on normal-deviate (probit) axes, its EER point marked."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from scipy.stats import norm
    false_alarm, miss = metrics.det_curve(scores, targets)
    eer = metrics.equal_error_rate(scores, targets)
    bound = 0.5 / len(scores)                       # 0 and 1 have no normal deviate
    figure, axes = plt.subplots(figsize=(6, 6))
    axes.plot(norm.ppf(np.clip(false_alarm, bound, 1 - bound)), norm.ppf(np.clip(miss, bound, 1 - bound)))
    axes.plot(norm.ppf(max(eer, bound)), norm.ppf(max(eer, bound)), 'o', label=f'EER {100 * eer:.2f} %')
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8])
    for set_ticks, set_labels in ((axes.set_xticks, axes.set_xticklabels), (axes.set_yticks, axes.set_yticklabels)):
        set_ticks(norm.ppf(ticks))
        set_labels([f'{100 * tick:g}' for tick in ticks])
    limit = norm.ppf([0.0005, 0.9])
    axes.set_xlim(*limit)
    axes.set_ylim(*limit)
    axes.set_xlabel('false alarm rate (%)')
    axes.set_ylabel('miss rate (%)')
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(loc='upper right')
    return figure


def score_histogram_figure(scores: np.ndarray, targets: np.ndarray, title: str, label: str = 'cosine score'):
    """Histograms of target and non-target trial scores (each normalised to unit area); label
    names the score on the x axis."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    targets = np.asarray(targets, dtype=bool)
    bins = np.linspace(min(scores.min(), -0.2), max(scores.max(), 1.0), 61)
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.hist(scores[~targets], bins=bins, density=True, alpha=0.6, label=f'different speakers ({(~targets).sum():,})')
    axes.hist(scores[targets], bins=bins, density=True, alpha=0.6, label=f'same speaker ({targets.sum():,})')
    axes.set_xlabel(label)
    axes.set_ylabel('density')
    axes.set_title(title)
    axes.legend(loc='upper left')
    return figure


def plot_verification(scores: np.ndarray, targets: np.ndarray, out_dir: str, title: str,
                      label: str = 'cosine score') -> None:
    """det.png and score_histogram.png in out_dir (label: what the scores are)."""
    import os
    save_figure(det_figure(scores, targets, title), os.path.join(out_dir, 'det.png'))
    save_figure(score_histogram_figure(scores, targets, title, label), os.path.join(out_dir, 'score_histogram.png'))


def timeline_figure(spans: list, similarities: np.ndarray, names: list, sample_rate: int, title: str):
    """Similarity over time to each speaker (a line per speaker at each partial's centre,
    seconds), and below it a strip coloured by the most similar speaker of each partial.
    similarities: [partials, speakers]."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    centres = np.array([(span.start + span.stop) / 2 / sample_rate for span in spans])          # [k]
    colours = plt.get_cmap('tab10').colors
    figure, (axes, strip) = plt.subplots(2, 1, figsize=(11, 5), sharex=True, height_ratios=[6, 1])
    for number, name in enumerate(names):
        axes.plot(centres, similarities[:, number], color=colours[number % 10], label=name)
    axes.set_ylabel('cosine similarity')
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize='small', frameon=False)
    end = max(span.stop for span in spans) / sample_rate
    edges = np.concatenate([[0.0], (centres[1:] + centres[:-1]) / 2, [end]])                 # each partial's share
    for first, last, speaker in zip(edges[:-1], edges[1:], similarities.argmax(axis=1)):
        strip.axvspan(first, last, color=colours[speaker % 10], alpha=0.6, lw=0)
    strip.set_yticks([])
    strip.set_ylabel('most\nsimilar', rotation=0, ha='right', va='center')
    strip.set_xlabel('time (s)')
    strip.set_xlim(0, end)
    return figure
