#!/usr/bin/env python
"""The Django side of the twisted-sse example: `python manage.py runserver` (see README.md here)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sseapp.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
