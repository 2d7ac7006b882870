"""Importers: pure Python (no Django). They detect a pipeline file's format, parse
it safely, validate it, and return one typed result, or raise an error that says
what is wrong and where (file, field path, line)."""
