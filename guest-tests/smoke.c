// SPDX-License-Identifier: GPL-2.0
/*
 * Smoke test of the guest environment every other test relies on: cgroup2
 * at /sys/fs/cgroup with the memory controller, and a child memcg that takes
 * a process and a memory.max.
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
