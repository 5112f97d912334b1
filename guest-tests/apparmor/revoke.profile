# file_charge_scope's lsm_revoke test. Compiled into revoke_policy.h by
# "make -C guest-tests policy" (needs apparmor_parser).
#
# The launcher changes itself to file_charge_scope_opener (an unconfined
# task may change to any profile) before it opens the file its programs
# inherit: AppArmor never revalidates a file opened by an unconfined task
# ("file delegation from unconfined tasks", aa_file_perm()). The programs
# it execs from a file named fcs_revoke_child run under
# file_charge_scope_revoke, which denies the files named fcs_revoked_*: at
# exec AppArmor replaces inherited fds of those with its null file
# (aa_inherit_files(), security/apparmor/file.c). That file lives on
# apparmorfs's internal mount, a disconnected path, opened with the new
# profile's permissions: without attach_disconnected the open is denied and
# AppArmor closes the denied fds instead.
profile file_charge_scope_opener {
  /{,**} rwmlk,
  /**/fcs_revoke_child px -> file_charge_scope_revoke,
}

profile file_charge_scope_revoke flags=(attach_disconnected) {
  file,
  deny /**/fcs_revoked_* rw,
}
