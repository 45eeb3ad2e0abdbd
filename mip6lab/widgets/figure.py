"""A matplotlib figure shown with its text alternative, as every picture of the course is.

``Figure(fig, alt=..., caption=...)`` displays as an ``<img>`` with the ``alt`` text and a
visible caption, and as that text in a terminal, a screen reader or a headless run; the
figure is closed once drawn so that the notebook's inline backend does not show it a
second time without its text.
"""

from __future__ import annotations

import base64
import io
from html import escape

__all__ = ["Figure"]


class Figure:
    def __init__(self, fig, *, alt: str, caption: str = "") -> None:
        if not alt.strip():
            raise ValueError("a figure needs its text alternative")
        import matplotlib.pyplot as plt

        self.alt, self.caption = alt.strip(), caption.strip()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        self.png = buffer.getvalue()

    def _repr_html_(self) -> str:
        data = base64.b64encode(self.png).decode("ascii")
        caption = f"<figcaption>{escape(self.caption)}</figcaption>" if self.caption else ""
        return (f'<figure class="mip6lab-figure" style="margin:0">'
                f'<img src="data:image/png;base64,{data}" alt="{escape(self.alt)}">'
                f"{caption}</figure>")

    def text(self) -> str:
        return f"[figure] {self.alt}" + (f"\n{self.caption}" if self.caption else "")

    def __repr__(self) -> str:
        return self.text()
