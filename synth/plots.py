"""The one figure style both reports draw in (`dramatis report` and `dramatis eval`)."""

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def axes(title: str, xlabel: str, ylabel: str, size=(6.4, 3.6), count_axis: str = "y"):
    """A titled figure and its one set of axes, gridded along `count_axis`; a "y" count axis shows whole numbers."""
    fig = Figure(figsize=size, dpi=100, layout="constrained")  # no pyplot: no global state, no display needed
    ax = fig.subplots()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(axis=count_axis, alpha=0.3)
    if count_axis == "y":  # counts: no "2.5 characters"
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig, ax
