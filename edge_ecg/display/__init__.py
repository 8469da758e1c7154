"""The bedside display: a page served by the daemon (stdlib HTTP + Server-Sent Events) showing the
live sweep, heart rate, lead and source state, IEC 60601-1-8 alarm signals, acknowledge / audio
pause behind a local secret, model findings and the alarm history. See docs/display.md."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from edge_ecg.display.feed import DisplayFeed, FeedLimits
from edge_ecg.display.server import DisplayApp, DisplayServer
from edge_ecg.display.settings import DisplayConfig

log = logging.getLogger(__name__)

__all__ = ["Display", "DisplayConfig", "DisplayFeed", "create_display"]


@dataclass
class Display:
    """A display wired into a daemon: the feed (observer + broadcaster) and the HTTP server."""

    feed: DisplayFeed
    server: DisplayServer
    url: str

    def start(self) -> "Display":
        self.feed.start()
        self.server.start()
        return self

    def close(self) -> None:
        self.server.close()
        self.feed.close()


def create_display(cfg: DisplayConfig, manager: Any, pipeline: Any, sinks: Any, state_dir: Path,
                   evidence_dir: Path | None = None, sounder: Any = None,
                   relearn: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None) -> Display:
    """Bind the server (errors here stop the start, before READY=1), register the feed as a
    pipeline observer and an event listener, and write the URL to ``<state_dir>/display.url``.
    ``relearn(origin)`` is the daemon's rhythm relearn (None: the page offers none)."""
    cfg.secret()  # an unreadable or world-readable token file fails now, naming the file
    control = cfg.pin is not None or cfg.token_file is not None

    def source_state() -> str | None:
        st = getattr(pipeline.source, "state", None)
        return getattr(st, "value", None if st is None else str(st))

    def extra() -> dict:
        out = {"control_enabled": control, "relearn_enabled": control and relearn is not None, "unlock_s": cfg.unlock_s,
               "px_per_mm": cfg.px_per_mm}
        if sounder is not None:
            out["sound"] = sounder.state
        return out

    def evidence_url(path: str) -> str | None:
        p = Path(path)
        if evidence_dir is None or p.parent.resolve() != evidence_dir.resolve():
            return None
        return f"/evidence/{p.name}"

    feed = DisplayFeed(manager.status, source_state, limits=FeedLimits(history=cfg.history), evidence_url=evidence_url, extra_state=extra)
    app = DisplayApp(cfg, feed, manager, sinks.note, evidence_dir, relearn=relearn)
    server = DisplayServer(app)
    pipeline.add_observer(feed)
    sinks.listeners.append(feed.on_event)
    url = server.url
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = state_dir / "display.url.tmp"
    tmp.write_text(url + "\n")
    tmp.replace(state_dir / "display.url")  # atomic: a reader never sees half a URL
    sinks.note("display", url=url, listen=server.source, control="secret" if control else "disabled")
    log.info("display: %s (%s)", url, server.source)
    return Display(feed, server, url)
