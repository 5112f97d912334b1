// SPDX-License-Identifier: GPL-2.0
/*
 * Smoke test of the guest environment every other test relies on: cgroup2
 * at /sys/fs/cgroup with the memory controller, a child memcg that takes
 * a process and a memory.max, and the CPUs QEMU was asked for.
 */
#define _GNU_SOURCE
#include <sys/statfs.h>
#include <sys/vfs.h>

#include "kselftest_harness.h"
#include "common.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

TEST(cgroup2_is_mounted_at_sys_fs_cgroup)
{
	char root[PATH_MAX] = "";
	struct statfs st;

	ASSERT_EQ(0, statfs(CGROUP_ROOT, &st));
	EXPECT_EQ(CGROUP2_SUPER_MAGIC, st.f_type);
	ASSERT_EQ(0, cg_find_unified_root(root, sizeof(root), NULL));
	EXPECT_STREQ(CGROUP_ROOT, root);
}

/*
 * The harness puts HARNESS_CPUS=<-smp> on the kernel command line; the
 * kernel hands unknown NAME=value parameters to init's environment. Over
 * SSH the environment is dropbear's, so fall back to /proc/cmdline.
 */
static long requested_cpus(void)
{
	const char *env = getenv("HARNESS_CPUS");
	char line[4096], *p;
	FILE *f;

	if (env)
		return atol(env);
	f = fopen("/proc/cmdline", "r");
	if (!f)
		return -1;
	if (!fgets(line, sizeof(line), f))
		line[0] = 0;
	fclose(f);
	for (p = strtok(line, " \n"); p; p = strtok(NULL, " \n"))
		if (!strncmp(p, "HARNESS_CPUS=", 13))
			return atol(p + 13);
	return -1;
}

/* Count the CPUs in a cpulist such as "0-1,3". */
static long cpulist_count(const char *list)
{
	long n = 0, a, b;
	char *end;

	while (*list && *list != '\n') {
		a = strtol(list, &end, 10);
		if (end == list)
			return -1;
		b = *end == '-' ? strtol(end + 1, &end, 10) : a;
		n += b - a + 1;
		list = *end == ',' ? end + 1 : end;
	}
	return n;
}

TEST(online_cpus_are_those_requested)
{
	long want = requested_cpus(), online = sysconf(_SC_NPROCESSORS_ONLN);
	char list[256] = "";

	ASSERT_LT(0, read_text("/sys/devices/system/cpu/online", list,
			       sizeof(list)));
	ksft_print_msg("cpus online: %ld (%s), requested: %ld\n", online,
		       strtok(list, "\n"), want);
	EXPECT_EQ(online, cpulist_count(list));
	/* the harness always passes it (harness/qemu.py kernel_cmdline()) */
	ASSERT_LT(0, want) TH_LOG("no HARNESS_CPUS= on the kernel command line");
	ASSERT_EQ(want, online)
		TH_LOG("QEMU was asked for %ld CPUs (-smp), the guest brought up %ld",
		       want, online);
}

TEST(memory_controller_is_available)
{
	EXPECT_EQ(0, cg_read_strstr(CGROUP_ROOT, "cgroup.controllers", "memory"));
	EXPECT_EQ(0, cg_read_strstr(CGROUP_ROOT, "cgroup.subtree_control",
				    "memory"))
		TH_LOG("the memory controller is not enabled for children");
}

FIXTURE(child_memcg) {
	char cg[PATH_MAX];
};

FIXTURE_SETUP(child_memcg)
{
	ASSERT_EQ(0, make_cgroup(self->cg, sizeof(self->cg), NULL, "smoke"))
		TH_LOG("mkdir under " CGROUP_ROOT ": %s",
					 strerror(errno));
}

FIXTURE_TEARDOWN_PARENT(child_memcg)
{
	remove_cgroup(self->cg);
}

TEST_F(child_memcg, has_memory_files)
{
	EXPECT_EQ(0, cg_read_strcmp(self->cg, "memory.max", "max\n"));
	EXPECT_GE(cg_read_long(self->cg, "memory.current"), 0);
	EXPECT_GE(cg_read_key_long(self->cg, "memory.stat",
				   "slab_unreclaimable "), 0);
	EXPECT_EQ(0, cg_read_key_long(self->cg, "memory.events", "oom_kill "));
}

static int report_own_cgroup(const char *cg, void *arg)
{
	char want[PATH_MAX];

	/* /proc/self/cgroup reads "0::/<path below the root>\n" */
	snprintf(want, sizeof(want), "0::%s\n", cg + strlen(CGROUP_ROOT));
	return proc_read_strstr(0, false, "cgroup", want) ? 1 : 0;
}

TEST_F(child_memcg, takes_a_process)
{
	EXPECT_EQ(0, cg_run(self->cg, report_own_cgroup, NULL));
}

TEST_F(child_memcg, memory_max_reads_back)
{
	ASSERT_EQ(0, cg_write(self->cg, "memory.max", "8388608"));
	EXPECT_EQ(8388608, cg_read_long(self->cg, "memory.max"));
	ASSERT_EQ(0, cg_write(self->cg, "memory.max", "max"));
	EXPECT_EQ(0, cg_read_strcmp(self->cg, "memory.max", "max\n"));
}

TEST_HARNESS_MAIN
