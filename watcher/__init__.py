"""The directory watcher: file writes under watched roots become ``vidflow.file-events``."""
