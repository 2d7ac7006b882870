#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipelines_site.settings")
    # Canal reads pipelines with kfp's pipeline_spec protobufs only. Where kfp's SDK is
    # installed too (a development install), importing them runs the SDK's __init__,
    # which imports its client and kubernetes: about 0.5 s per command. KFP's own
    # runtime switch, which its executor sets in step containers, skips that.
    os.environ.setdefault("_KFP_RUNTIME", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
