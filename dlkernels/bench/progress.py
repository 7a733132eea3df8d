"""Progress of a run: each case's line as it is measured, under a progress bar when tqdm is
installed and stderr is a terminal (the bar appears only once a run has taken a few seconds)."""

from __future__ import annotations

import sys

try:
    from tqdm import tqdm
except ImportError:  # optional: the lines alone say as much
    tqdm = None


class Progress:
    def __init__(self, total: int | None = None, *, bar: bool | None = None, delay: float = 3.0):
        use_bar = tqdm is not None and (sys.stderr.isatty() if bar is None else bar)
        self.bar = (
            tqdm(total=total, unit="case", delay=delay, file=sys.stderr, dynamic_ncols=True, leave=False)
            if use_bar
            else None
        )

    def __call__(self, text: str) -> None:
        """A measured case's line: printed, and the bar advances."""
        self.note(text)
        if self.bar is not None:
            self.bar.update(1)

    def note(self, text: str) -> None:
        """A line that is not a finished case (a re-measurement, a suite's heading)."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
