"""The machine a benchmark ran on, recorded with its results (``machine_info()``)."""
import datetime
import os
import platform
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def machine_info() -> dict:
    """CPU model, cores, memory (GiB), OS, Python, git commit and UTC time of this run."""
    cpu = platform.processor() or ''
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        pass
    mem_gib = None
    try:
        with open('/proc/meminfo') as f:
            mem_gib = int(f.readline().split()[1]) / 2 ** 20
    except (OSError, ValueError, IndexError):
        pass
    try:
        commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, text=True,
                                capture_output=True).stdout.strip()
    except OSError:
        commit = ''
    return dict(cpu=cpu, cores=os.cpu_count(), mem_gib=mem_gib, os=platform.platform(),
                python=platform.python_version(), commit=commit,
                date=datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds'))
