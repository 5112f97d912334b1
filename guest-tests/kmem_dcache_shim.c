// SPDX-License-Identifier: GPL-2.0
/*
 * Linked into test_kmem only, with -Wl,--wrap=stat. test_kmem_basic fills
 * its memcg with negative dentries by stat()ing 100000 missing paths in
 * "/". The guest's / is the initramfs, a tmpfs, which never keeps negative
 * dentries (always_delete_dentry), so the test would measure nothing.
 * Look those paths up relative to the working directory instead, which the
 * guest init puts on ext2, where negative dentries stay in the dcache.
 */
#include <string.h>
#include <sys/stat.h>

#define DCACHE_PREFIX "/something-non-existent-with-a-long-name-"

int __real_stat(const char *path, struct stat *st);

int __wrap_stat(const char *path, struct stat *st)
{
	if (!strncmp(path, DCACHE_PREFIX, strlen(DCACHE_PREFIX)))
		path++;
	return __real_stat(path, st);
}
