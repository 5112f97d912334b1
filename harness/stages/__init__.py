"""The pipeline's stages before the boot, one module each, in order:
source (the base tree), series (the patches on it), kconfig (the .config),
build (the kernel image), rootfs (the guest tests' initramfs).

The boot and its transports are harness/transports/, the judge harness/judge.py,
the whole run harness/pipeline.py.
"""
