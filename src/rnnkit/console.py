"""The two rich consoles the front ends write to: results on stdout, progress and logs on stderr."""

from rich.console import Console

stdout = Console()
stderr = Console(stderr=True)
