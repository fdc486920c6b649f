"""Figures: the t-SNE map of embeddings that Inference.py draws and Train.py logs."""
import numpy as np


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
