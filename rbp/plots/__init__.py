"""Every figure of the project (seaborn on matplotlib), in one place and one theme.

Each function returns a Figure to show or log: `data` (what the sequences look like), `training`
(learning curves), `compare` (the model comparison), `sweep` (metric against window length),
`predict` (a transcript's binding profile), `interpret` (attribution and motif logos),
`leaderboard` (test ROC AUC across data sets) and `variants` (a variant's effect).
"""

from __future__ import annotations

import base64
import io

import matplotlib

if matplotlib.get_backend().lower() not in {"module://matplotlib_inline.backend_inline"}:
    matplotlib.use("Agg")  # headless by default; notebooks keep their inline backend
import matplotlib.pyplot as plt
import seaborn as sns

sns.set_theme(style="whitegrid", context="notebook")


def show(figures: dict | list) -> None:
    """Display figures once in a notebook, side by side as the page's width allows, each at its own
    size (100 pixels an inch) or narrower, whatever the matplotlib backend (Agg in tests)."""
    from IPython.display import HTML, display

    images = []
    for figure in figures.values() if isinstance(figures, dict) else figures:
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=150, bbox_inches="tight")
        width = int(figure.get_figwidth() * 100)
        data = base64.b64encode(png.getvalue()).decode()
        images.append(f'<img src="data:image/png;base64,{data}" style="width:{width}px;max-width:100%">')
        plt.close(figure)  # the inline backend would show it a second time; it can still be logged
    display(HTML('<div style="display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start">'
                 + "".join(images) + "</div>"))


from rbp.plots.compare import comparison_figures  # noqa: E402
from rbp.plots.data import class_balance, length_distribution, motif_occurrence  # noqa: E402
from rbp.plots.interpret import attribution_logos, motif_logos, top_motifs  # noqa: E402
from rbp.plots.leaderboard import leaderboard  # noqa: E402
from rbp.plots.predict import profile_figure, tracks_figure  # noqa: E402
from rbp.plots.sweep import plot_sweep  # noqa: E402
from rbp.plots.training import learning_curves  # noqa: E402
from rbp.plots.variants import variant_figure  # noqa: E402

__all__ = ["attribution_logos", "class_balance", "comparison_figures", "leaderboard", "learning_curves",
           "length_distribution", "motif_logos", "motif_occurrence", "plot_sweep", "profile_figure", "show",
           "top_motifs", "tracks_figure", "variant_figure"]
