"""Canal's date formats, for what Django formats itself (the admin's lists and pages):
the one time format of every page, ``2026-03-29 09:00:07 UTC`` (see apps.core.timefmt)."""
