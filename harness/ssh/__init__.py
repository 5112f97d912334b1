"""SSH into the test guest: QEMU user networking, dropbear, paramiko.

The guest gets QEMU user networking with one host forward, bound to 127.0.0.1
only (`restrict=on`: the guest cannot reach anything), and dropbear. The
cached initramfs is left alone: a small per-boot cpio with dropbear, its
shared libraries, a fresh host key, root's authorized_keys and
guest_ssh.sh is appended to it (the kernel unpacks concatenated archives in
order). Both keys are made per boot; the host key is pinned, so the client
never trusts an unknown server.

One module per job:
- net.py: QEMU's network and monitor arguments, the free port;
- keys.py: the client key and the dropbear host key;
- initrd.py: the SSH cpio appended to the cached initramfs;
- client.py: a paramiko connection that runs commands and copies files;
- session.py: the guest tests over that connection, as the KTAP document the
  console init would have printed (the worker of transports/ssh.py, which
  is `harness test --transport ssh`);
- interactive.py: `harness boot --ssh` and `harness ssh [COMMAND...]`.
"""
