"""Errors from the kernel, initrd and command-line loaders."""

from __future__ import annotations


class LoaderError(Exception):
    """A kernel image, initrd or command line cannot be used; the message says why."""
