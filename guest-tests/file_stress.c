// SPDX-License-Identifier: GPL-2.0
/*
 * Concurrent file churn in a memcg under a tight limit must not leak
 * charges: once the workers are gone and their memcg removed, the parent's
 * slab_unreclaimable is back where it started.
 *
 * NR_WORKERS processes open, close, dup, create pipes and eventfds, and
 * pass files to each other and to themselves with SCM_RIGHTS, for
 * STRESS_SECONDS. Running into the limit is the point: ENOMEM, EMFILE and
 * friends are expected, and so are OOM kills on kernels that charge files
 * at allocation or where another allocation (a socket) hits the limit.
 * Files left in flight in a socket are freed when the test process closes
 * the socket at the end, which uncharges them from outside the memcg.
 */
#define _GNU_SOURCE
#include "kselftest_harness.h"
#include "common.h"
#include "churn.h"

#define NR_WORKERS		4
/* ~10^4 operations per worker under TCG (see MIN_STRESS_DONE). */
#define STRESS_SECONDS		5
/*
 * memory.max of the stressed memcg: the workers' own pages (~100 KiB each)
 * plus less than the NR_WORKERS * POOL_SIZE files (~800 KiB), pipes and
 * sockets they would hold at their peak.
 */
#define STRESS_LIMIT		(2L << 20)
/*
 * Operations that must have done something (made, closed, duplicated or
 * passed a file; churn.h), over all workers, killed ones included: a run
 * where every operation was refused, or every worker idle or killed at
 * once, proves nothing about leaks. Measured (2 CPUs, TCG): 43000-72000
 * on the default profile, series; 1103 on the debug profile (KASAN,
 * lockdep), then counting only the workers that survived. A quarter of
 * the slowest.
 */
#define MIN_STRESS_DONE		250

FIXTURE(stress) {
	char parent[PATH_MAX];
	char child[PATH_MAX];
};

FIXTURE_SETUP(stress)
{
	enable_memory_controller(CGROUP_ROOT);
	ASSERT_EQ(0, make_cgroup(self->parent, sizeof(self->parent), NULL,
				 "file_stress"));
	ASSERT_EQ(0, enable_memory_controller(self->parent));
	ASSERT_EQ(0, make_cgroup(self->child, sizeof(self->child),
				 self->parent, "child"));
}

FIXTURE_TEARDOWN_PARENT(stress)
{
	remove_cgroup(self->child);
	remove_cgroup(self->parent);
}

/*
 * Workers that get OOM-killed are replaced until the time is up (at most
 * MAX_RESPAWNS times: each OOM kill prints a report on the slow console),
 * so that the churn goes on and dying with files in flight is covered.
 */
#define MAX_RESPAWNS		20
/* Do not start a worker in the last bit of the run. */
#define RESPAWN_CUTOFF_MS	200

TEST_F_TIMEOUT(stress, no_charge_leaks_under_pressure, 900)
{
	struct churn_arg args[NR_WORKERS];
	struct worker w[NR_WORKERS];
	bool retired[NR_WORKERS] = { false };
	long base, after, slack = stat_slack();
	struct churn_total total = { 0 };
	long oom_kills, deadline;
	int shared[2], i, killed = 0, spawned = 0, failed = 0;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM, 0, shared));
	base = slab_unreclaimable(self->parent);
	ASSERT_EQ(0, cg_write_numeric(self->child, "memory.max", STRESS_LIMIT));
	deadline = now_ms() + STRESS_SECONDS * 1000;
	for (i = 0; i < NR_WORKERS; i++) {
		args[i].shared[0] = shared[0];
		args[i].shared[1] = shared[1];
		args[i].deadline = deadline;
		args[i].seed = ++spawned;
		ASSERT_EQ(0, worker_start(&w[i], self->child, churn_worker,
					  &args[i]));
	}
	while (now_ms() < deadline - RESPAWN_CUTOFF_MS) {
		for (i = 0; i < NR_WORKERS; i++) {
			struct worker *wi = &w[i];

			if (retired[i] || worker_alive(wi))
				continue;
			if (WIFSIGNALED(wi->status) &&
			    WTERMSIG(wi->status) == SIGKILL) {
				killed++;
			} else {
				failed++;
				TH_LOG("worker %d %s", i, worker_end(wi));
			}
			churn_add(&total, wi);	/* what it did before it died */
			munmap((void *)wi->shm, PAGE_SIZE);
			if (spawned - NR_WORKERS >= MAX_RESPAWNS) {
				retired[i] = true;
				continue;
			}
			args[i].seed = ++spawned;
			ASSERT_EQ(0, worker_start(wi, self->child,
						  churn_worker, &args[i]));
		}
		usleep(10000);
	}
	for (i = 0; i < NR_WORKERS; i++) {
		struct worker *wi = &w[i];

		if (retired[i])
			continue;	/* counted above */
		worker_step(wi, 1);
		worker_finish(wi);
		churn_add(&total, wi);
		if (WIFSIGNALED(wi->status) && WTERMSIG(wi->status) == SIGKILL) {
			killed++;
		} else if (!WIFEXITED(wi->status) || WEXITSTATUS(wi->status)) {
			failed++;
			TH_LOG("worker %d %s", i, worker_end(wi));
		}
	}
	oom_kills = memcg_event(self->child, "oom_kill ");
	ksft_print_msg("workers: %d, killed: %d, oom_kill: %ld\n",
		       spawned, killed, oom_kills);
	churn_report(&total);
	EXPECT_EQ(0, failed);
	EXPECT_EQ(killed, oom_kills) TH_LOG("workers killed other than by OOM");
	EXPECT_GE(total.done, MIN_STRESS_DONE)
		TH_LOG("too little churn to prove anything");

	/* drop what is still in flight, then the memcg */
	close(shared[0]);
	close(shared[1]);
	ASSERT_EQ(0, remove_cgroup(self->child));
	/*
	 * Only growth is a leak. The parent may also end up below its base:
	 * the child memcg's own structures (vmstats, per-node lruvec stats)
	 * were charged to the parent when the child was created and go away
	 * with it: ~3 KiB, ~9 KiB under slab debugging.
	 */
	after = slab_settle_below(self->parent, base + slack);
	ksft_print_msg("parent slab_unreclaimable: %ld -> %ld\n", base, after);
	ASSERT_LE(after - base, slack);
}

TEST_HARNESS_MAIN
