# file_charge_scope's lsm_revoke test: a program exec'd from a file named
# fcs_revoke_child may use every file but those named fcs_revoked_*, so at
# exec AppArmor replaces inherited fds of those with its null file
# (aa_inherit_files(), security/apparmor/file.c). Compiled into
# revoke_policy.h by "make -C guest-tests policy" (needs apparmor_parser).
profile file_charge_scope_revoke /**/fcs_revoke_child {
  file,
  deny /**/fcs_revoked_* rw,
}
