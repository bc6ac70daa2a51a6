"""Kernel, initrd and command-line loaders: bytes in, a load plan out."""

from ember.loader.bzimage import BzImage, is_bzimage, parse_bzimage
from ember.loader.cmdline import encode_cmdline
from ember.loader.elf import HEADER_READ_SIZE, KernelLayout, Segment, is_elf, parse_elf
from ember.loader.errors import LoaderError
from ember.loader.initrd import initrd_address

__all__ = ["HEADER_READ_SIZE", "BzImage", "KernelLayout", "LoaderError", "Segment",
           "encode_cmdline", "initrd_address", "is_bzimage", "is_elf", "parse_bzimage", "parse_elf"]
