# Offline bootstrap of pip for ansible-test's --venv environments (scripts/test-suite installs it as
# ~/.ansible/test/cache/get_pip_<version>.py). ansible-test downloads get-pip.py from a host this machine
# cannot reach; this does the same job with ensurepip, then lets pip install the pinned packages from PyPI.
import ensurepip
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
