"""Uploads: the resumable multipart API (:mod:`.api`, typed by :mod:`.schemas`) and the
upload page (:mod:`.page`). The portal never carries the bytes: see :mod:`.api`."""

from portal.uploads.api import UploadApi, storage_client
from portal.uploads.page import upload_page

__all__ = ["UploadApi", "storage_client", "upload_page"]
