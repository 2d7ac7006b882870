"""The experiment pages: views and their URL conf."""
