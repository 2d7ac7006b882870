"""Views of the KFP v2beta1-compatible REST API, one module per service."""
