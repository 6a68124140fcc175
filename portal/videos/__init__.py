"""Videos: the list and detail pages with their actions (:mod:`.pages`) and the JSON API
(:mod:`.api`, typed by :mod:`.schemas`)."""
