"""``vidflow watch DIR...``: file writes under directories become ``vidflow.file-events``.

On start every file already present is compared with what this watcher last reported (kept in
``VIDFLOW_HOME/watch-state.json``), so a restart misses nothing and re-sends nothing unchanged.
Writes come from ``watchfiles`` (debounced ``file.changed``); beside it a plain Linux inotify
watch (``inotify_simple``) sees what ``watchfiles`` cannot: a writer closing the file
(``IN_CLOSE_WRITE``) and a file renamed into place (``IN_MOVED_TO``) become ``file.closed``, which
may end the stream a short grace later if the file is then a complete video (a close is a hint:
see the ingest flow's ``completion.py``). A directory moved into a root has its files reported;
deletions become ``file.deleted``.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import click
import inotify_simple
import watchfiles
from prometheus_client import Counter

from connectors.kafka import flush_or_raise, make_producer, produce_event, wait_for_kafka
from connectors.metrics import start_metrics_server
from core import events as ev
from core.logs import get_logger
from core.settings import Settings, get_settings
from watcher.watching import FileFacts, inside_roots, reportable, stream_id_for, watcher_host

__all__ = ["CloseWatcher", "DirectoryWatcher", "watch_command"]

log = get_logger("watcher.watch")
EVENTS = Counter("vidflow_watcher_events", "File events sent to Kafka, by type.", ["type"])


class DirectoryWatcher:
    """Turns file-system changes under ``roots`` into file events."""

    def __init__(self, settings: Settings, roots: list[Path]) -> None:
        self.settings = settings
        self.roots = [root.resolve() for root in roots]
        self.host = watcher_host(settings.ingest.host)
        self.producer = make_producer(settings.kafka)
        self.topic = settings.kafka.topic_file_events
        self.state_file = Path(settings.home).resolve() / "watch-state.json"
        self.reported: dict[str, FileFacts] = self._load_state()
        # the close watcher reports from its own thread: reported state and commits are shared
        self.lock = threading.RLock()

    def _load_state(self) -> dict[str, FileFacts]:
        try:
            raw = json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        return {path: FileFacts(**facts) for path, facts in raw.items()}

    def _save_state(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps({p: vars(f) for p, f in self.reported.items()}))
        temporary.replace(self.state_file)

    def _root_of(self, path: Path) -> Path | None:
        return next((root for root in self.roots if path.is_relative_to(root)), None)

    def _acceptable(self, path: Path) -> bool:
        if self._root_of(path) is not None and not inside_roots(path, self.roots):
            log.warning("refusing a path that leads outside the watched roots", path=str(path))
        return reportable(path, self.roots, self.settings.ingest.ignore_patterns)

    def report_changed(self, path: Path) -> bool:
        """Send ``file.changed`` if ``path`` differs from what was last reported."""
        return self._report(path, ev.FileChanged, only_if_new=True)

    def report_closed(self, path: Path) -> bool:
        """Send ``file.closed``: the writer is done (closed after writing, or renamed into place).

        Always sent, even when the size was reported already; the facts are recorded, so the
        debounced ``file.changed`` of the same write that may come later is not sent after it
        (an event after completion would start a new version)."""
        return self._report(path, ev.FileClosed, only_if_new=False)

    def _report(
        self, path: Path, kind: type[ev.FileChanged | ev.FileClosed], *, only_if_new: bool
    ) -> bool:
        if not self._acceptable(path):
            return False
        try:
            facts = FileFacts.of(path)
        except FileNotFoundError:
            return False
        if only_if_new and self.reported.get(str(path)) == facts:
            return False
        tag = str(kind.__struct_config__.tag)
        event = kind(
            id=ev.event_id(tag, self.host, path, facts.size, facts.mtime, facts.inode),
            stream_id=stream_id_for(self.host, path), host=self.host, path=str(path),
            size=facts.size, mtime=facts.mtime, inode=facts.inode,
        )  # fmt: skip
        produce_event(self.producer, self.topic, event)
        self.reported[str(path)] = facts
        EVENTS.labels(type=event.type).inc()
        return True

    def report_tree(self, directory: Path, *, closed: bool = False) -> int:
        """Report every file under ``directory`` (one moved into a root arrives whole)."""
        sent = 0
        for path in _files_under(directory):
            sent += self.report_closed(path) if closed else self.report_changed(path)
        return sent

    def report_deleted(self, path: Path) -> bool:
        """Send ``file.deleted`` for a path this watcher had reported."""
        if self.reported.pop(str(path), None) is None:
            return False
        event = ev.FileDeleted(
            id=ev.event_id("file.deleted", self.host, path, os.urandom(8).hex()),
            stream_id=stream_id_for(self.host, path), host=self.host, path=str(path),
        )  # fmt: skip
        produce_event(self.producer, self.topic, event)
        EVENTS.labels(type=event.type).inc()
        return True

    def scan(self) -> int:
        """Report every file already present (and deletions while we were away)."""
        with self.lock:
            sent = 0
            present: set[str] = set()
            for root in self.roots:
                for path in _files_under(root):
                    present.add(str(path))
                    sent += self.report_changed(path)
            for gone in [p for p in self.reported if p not in present]:
                sent += self.report_deleted(Path(gone))
            self._commit()
            return sent

    def apply(self, changes: Iterable[tuple[watchfiles.Change, str]]) -> int:
        """Report one batch of changes from the file-system watcher."""
        with self.lock:
            sent = 0
            for change, raw_path in changes:
                path = Path(raw_path)
                if change == watchfiles.Change.deleted:
                    sent += self.report_deleted(path)
                elif path.is_dir() and not path.is_symlink() and self._root_of(path):
                    sent += self.report_tree(path)  # a directory moved in: only it is reported
                else:
                    sent += self.report_changed(path)
            self._commit()
            return sent

    def _commit(self) -> None:
        flush_or_raise(self.producer)  # state is saved only once Kafka has the events
        self._save_state()

    def run(self, stop: threading.Event | None = None) -> None:
        """Scan, then follow changes until ``stop`` is set."""
        stop = stop or threading.Event()
        closes = CloseWatcher(self)  # watching before the scan: no close is missed between
        thread = threading.Thread(target=closes.run, args=(stop,), name="watch-close", daemon=True)
        thread.start()
        try:
            self.scan()
            log.info("watching", roots=[str(r) for r in self.roots], topic=self.topic)
            for changes in watchfiles.watch(
                *self.roots, stop_event=stop, debounce=200, step=50, recursive=True
            ):
                self.apply(changes)
        finally:
            stop.set()
            thread.join(5)


def _files_under(directory: Path) -> Iterator[Path]:
    for parent, _, names in os.walk(directory, followlinks=False):
        for name in names:
            yield Path(parent) / name


F = inotify_simple.flags
DIRECTORY_MASK = F.CLOSE_WRITE | F.MOVED_TO | F.MOVED_FROM | F.CREATE | F.ONLYDIR


class CloseWatcher:
    """inotify on every directory under the roots, for what ``watchfiles`` does not report:
    ``IN_CLOSE_WRITE`` and a file renamed in (``file.closed``), a directory created or moved in
    (watched from then on; a moved-in one has its files reported as closed)."""

    def __init__(self, watcher: DirectoryWatcher) -> None:
        self.watcher = watcher
        self.inotify = inotify_simple.INotify()
        self.directories: dict[int, Path] = {}
        for root in watcher.roots:
            self._watch_tree(root)

    def _watch_tree(self, top: Path) -> None:
        for parent, subdirectories, _ in os.walk(top, followlinks=False):
            try:
                wd = self.inotify.add_watch(parent, DIRECTORY_MASK)
            except OSError as exc:  # gone already, or no permission: nothing to watch there
                log.warning("cannot watch a directory", path=parent, error=str(exc))
                subdirectories.clear()
                continue
            self.directories[wd] = Path(parent)

    def _unwatch_tree(self, top: Path) -> None:
        """A directory moved away: its watches go (moved within a root, it is watched again)."""
        for wd, path in list(self.directories.items()):
            if path == top or path.is_relative_to(top):
                del self.directories[wd]
                with contextlib.suppress(OSError):  # the kernel may have dropped it already
                    self.inotify.rm_watch(wd)

    def handle(self, events: Iterable[inotify_simple.Event]) -> int:
        """Report one batch of inotify events; the number of events sent."""
        sent = 0
        for event in events:
            if event.mask & F.IGNORED:
                self.directories.pop(event.wd, None)
                continue
            parent = self.directories.get(event.wd)
            if parent is None or not event.name:
                continue
            path = parent / event.name
            if event.mask & F.ISDIR:
                if event.mask & F.MOVED_FROM:
                    self._unwatch_tree(path)
                elif event.mask & (F.CREATE | F.MOVED_TO):
                    self._watch_tree(path)
                    if event.mask & F.MOVED_TO:
                        sent += self.watcher.report_tree(path, closed=True)
            elif event.mask & (F.CLOSE_WRITE | F.MOVED_TO):
                sent += self.watcher.report_closed(path)
        return sent

    def run(self, stop: threading.Event) -> None:
        """Follow the inotify events until ``stop`` is set."""
        try:
            while not stop.is_set():
                events = self.inotify.read(timeout=200)
                if not events:
                    continue
                with self.watcher.lock:
                    if self.handle(events):
                        self.watcher._commit()
        finally:
            self.inotify.close()


@click.command("watch")
@click.argument(
    "directories", nargs=-1, required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)  # fmt: skip
@click.option("--once", is_flag=True, help="Report what is there now, then exit.")
def watch_command(directories: tuple[Path, ...], once: bool) -> None:
    """Watch DIRECTORIES recursively and send file events to Kafka."""
    settings = get_settings()
    wait_for_kafka(settings.kafka, timeout=120)
    start_metrics_server(settings.metrics.watcher_port)
    watcher = DirectoryWatcher(settings, list(directories))
    if once:
        click.echo(f"reported {watcher.scan()} file event(s)")
        return
    watcher.run()
