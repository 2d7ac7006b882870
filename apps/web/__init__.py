"""Server-rendered pages that show more than one Django app's data, so they sit above
the apps they combine (import-linter's app layers contract, pyproject.toml): the run
pages (they show a run's artifacts, and the new-run form also creates recurring runs)
and the experiment pages (they list an experiment's runs and recurring runs). A plain
package, not a Django app: it has no models, and its templates live in ``templates/``
beside the others'. Pages of one app stay in that app (``apps/pipelines/views.py``...)."""
