"""Every figure of the project (seaborn on matplotlib), in one place and one theme.

Each function returns a Figure to show or log: `data` (what the sequences look like), `training`
(learning curves), `compare` (the model comparison) and `sweep` (metric against window length).
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


def show(figures: dict, max_width: int = 1100) -> None:
    """Display each figure once in a notebook, at the page's full width (up to `max_width` pixels),
    whatever the matplotlib backend (Agg in tests)."""
    from IPython.display import HTML, display

    for figure in figures.values():
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=150, bbox_inches="tight")
        data = base64.b64encode(png.getvalue()).decode()
        display(HTML(f'<img src="data:image/png;base64,{data}" style="width:100%;max-width:{max_width}px">'))
        plt.close(figure)  # the inline backend would show it a second time; it can still be logged


from rbp.plots.compare import comparison_figures  # noqa: E402
from rbp.plots.data import class_balance, length_distribution, motif_occurrence  # noqa: E402
from rbp.plots.sweep import plot_sweep  # noqa: E402
from rbp.plots.training import learning_curves  # noqa: E402

__all__ = ["class_balance", "comparison_figures", "learning_curves", "length_distribution", "motif_occurrence",
           "plot_sweep", "show"]
