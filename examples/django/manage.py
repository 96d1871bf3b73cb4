#!/usr/bin/env python3
"""Django's command line (`python3 manage.py migrate --noinput` is the app role's app_migrate_command)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "refapp.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
