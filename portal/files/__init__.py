"""A video's objects (HLS playlists and segments, previews) served same-origin."""
