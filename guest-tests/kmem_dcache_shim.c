// SPDX-License-Identifier: GPL-2.0
/*
 * Linked into test_kmem only, with -Wl,--wrap=stat,--wrap=pthread_create,
 * --wrap=cg_read_key_long. test_kmem_basic fills
 * its memcg with negative dentries by stat()ing 100000 missing paths in
 * "/". The guest's / is the initramfs, a tmpfs, which never keeps negative
 * dentries (always_delete_dentry), so the test would measure nothing.
 * Look those paths up relative to the working directory instead, which the
 * guest init puts on ext2, where negative dentries stay in the dcache.
 */
#include <pthread.h>
#include <stdio.h>
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

/*
 * test_kmem_kernel_stacks fails without a word: it starts 1000 threads and
 * wants memory.stat's kernel_stack >= 1000 pages. Say which half failed
 * (KTAP diagnostics, so the report shows them) and change nothing else.
 */
int __real_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg);
long __real_cg_read_key_long(const char *cgroup, const char *control,
			     const char *key);

int __wrap_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
			  void *(*fn)(void *), void *arg)
{
	static int created, reported;
	int ret = __real_pthread_create(thread, attr, fn, arg);

	if (!ret)
		created++;
	else if (!reported++)
		printf("# pthread_create failed after %d threads: %s\n",
		       created, strerror(ret));
	return ret;
}

long __wrap_cg_read_key_long(const char *cgroup, const char *control,
			     const char *key)
{
	long v = __real_cg_read_key_long(cgroup, control, key);

	if (!strcmp(key, "kernel_stack "))
		printf("# %s memory.stat kernel_stack %ld\n", cgroup, v);
	return v;
}
