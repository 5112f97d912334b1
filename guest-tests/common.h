/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the guest tests: cgroup plumbing on top of the upstream
 * selftests' cgroup_util.c, precise slab readings, and "workers": processes
 * forked into a memcg that run a test's steps one at a time while the test
 * process, which stays outside that memcg, measures between the steps.
 *
 * Workers and the test process talk only through a MAP_SHARED page that the
 * test process creates and faults in before forking, so a worker can report
 * and wait without allocating anything that would be charged to its memcg,
 * which matters for workers that run at their memcg's limit.
 */
#ifndef GUEST_TESTS_COMMON_H
#define GUEST_TESTS_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup_util.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

/*
 * kselftest_harness.h kills a test after 30 s. Under QEMU TCG with KASAN and
 * lockdep (the debug profile) a test runs 10-20 times slower than that was
 * meant for; the guest init's per-program timeout (harness.per_test) is
 * what guards against hangs here. Every test is declared after this.
 */
#ifdef TEST_TIMEOUT_DEFAULT
#undef TEST_TIMEOUT_DEFAULT
#define TEST_TIMEOUT_DEFAULT 900
#endif

/*
 * memory.stat is flushed from per-CPU counters lazily (only once enough
 * updates piled up, or every 2 s); reading cpu.stat of a non-root cgroup
 * flushes that cgroup's whole rstat subtree, memcg included, so a following
 * memory.stat read is exact except for the per-CPU objcg byte stocks: each
 * CPU caches up to a page (either sign: mod_objcg_state() flushes at more
 * than PAGE_SIZE) of not yet accounted slab bytes for the objcg it last
 * charged. The slack is for a difference of two readings, so two pages per
 * CPU (one page per CPU was once exceeded: 13584 bytes on 2 CPUs after 1024
 * io_uring rings were freed from kworkers), plus one page for odd
 * allocations a syscall may leave behind (e.g. a slab's lazily allocated
 * objcg vector). On 2 CPUs that is 20 KB, against the 200 KB or more that
 * one missed charge or uncharge per file would show in any test here.
 */
static inline long stat_slack(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	return (2 * (cpus > 0 ? cpus : 1) + 1) * PAGE_SIZE;
}

/*
 * Evidence for a skip: a kernel feature is absent when the file it creates
 * in /proc or /sys is (ENOENT); any other error reaching it is a failure.
 */
static inline bool path_absent(const char *path)
{
	return access(path, F_OK) && errno == ENOENT;
}

/* Whether the running kernel's release (uname -r) is before @major.@minor. */
static inline bool kernel_older_than(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma < major || (ma == major && mi < minor);
}

/* How long charges freed from RCU callbacks or workqueues may take. */
#define SETTLE_TIMEOUT_MS 15000

static inline long slab_unreclaimable(const char *cg)
{
	char buf[PAGE_SIZE];

	cg_read(cg, "cpu.stat", buf, sizeof(buf));	/* flushes rstat */
	return cg_read_key_long(cg, "memory.stat", "slab_unreclaimable ");
}

static inline long memcg_stat(const char *cg, const char *key_with_space)
{
	char buf[PAGE_SIZE];

	cg_read(cg, "cpu.stat", buf, sizeof(buf));
	return cg_read_key_long(cg, "memory.stat", key_with_space);
}

static inline long memcg_event(const char *cg, const char *key_with_space)
{
	return cg_read_key_long(cg, "memory.events", key_with_space);
}

/*
 * Poll until slab_unreclaimable of @cg is in [@lo, @hi], or SETTLE_TIMEOUT_MS
 * passed. Returns the last reading.
 */
static inline long slab_settle_between(const char *cg, long lo, long hi)
{
	long v = 0;
	int ms;

	for (ms = 0; ms <= SETTLE_TIMEOUT_MS; ms += 20) {
		v = slab_unreclaimable(cg);
		if (v >= 0 && v >= lo && v <= hi)
			break;
		usleep(20000);
	}
	return v;
}

/* Until within @slack of @target. */
static inline long slab_settle(const char *cg, long target, long slack)
{
	return slab_settle_between(cg, target - slack, target + slack);
}

/* Until no more than @limit: for a figure that may also drop below. */
static inline long slab_settle_below(const char *cg, long limit)
{
	return slab_settle_between(cg, 0, limit);
}

/*
 * Bytes charged per struct file: the filp cache's object size plus the
 * obj_cgroup pointer kept for it (obj_full_size() in mm/memcontrol.c).
 * Returns -1 if /sys/kernel/slab is not available (SLUB_TINY, no sysfs).
 */
static inline long filp_charge_size(void)
{
	char buf[64];

	if (read_text("/sys/kernel/slab/filp/slab_size", buf, sizeof(buf)) <= 0)
		return -1;
	return atol(buf) + (long)sizeof(void *);
}

/*
 * Create @name (suffixed with our pid) under @parent, or under the cgroup2
 * root when @parent is NULL, and store its path in @out. Paths live in
 * caller-provided arrays so that fixtures can keep them in the MAP_SHARED
 * fixture data FIXTURE_TEARDOWN_PARENT() reads from the parent process.
 */
static inline int make_cgroup(char *out, size_t len, const char *parent,
			      const char *name)
{
	if (snprintf(out, len, "%s/%s_%d", parent ? parent : CGROUP_ROOT,
		     name, getpid()) >= (int)len)
		return -1;
	cg_destroy(out);	/* a leftover of an earlier, killed run */
	if (cg_create(out)) {
		out[0] = 0;
		return -1;
	}
	return 0;
}

static inline int enable_memory_controller(const char *cg)
{
	return cg_write(cg, "cgroup.subtree_control", "+memory");
}

/* Remove a cgroup made by make_cgroup(), killing what still runs in it. */
static inline int remove_cgroup(char *cg)
{
	int ret = 0;

	if (cg[0])
		ret = cg_destroy(cg);
	cg[0] = 0;
	return ret;
}

/*
 * Raise RLIMIT_NOFILE to @n and grow the fd table to @n slots, so that
 * charges measured later contain no fd table reallocation (the table is
 * kvmalloc()ed with __GFP_ACCOUNT and shows up in slab_unreclaimable).
 */
static inline int prepare_fd_table(int n)
{
	struct rlimit rl = { n, n };
	int fd, ret;

	if (setrlimit(RLIMIT_NOFILE, &rl))
		return -1;
	fd = open("/dev/null", O_RDONLY);
	if (fd < 0)
		return -1;
	ret = dup2(fd, n - 1);
	close(fd);
	if (ret < 0)
		return -1;
	close(ret);
	return 0;
}

/* Open @path @n times into @fds; returns how many were opened. */
static inline int open_many(const char *path, int flags, int *fds, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		fds[i] = open(path, flags);
		if (fds[i] < 0)
			break;
	}
	return i;
}

static inline void close_many(int *fds, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

static inline long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- workers --------------------------------------------------------- */

#define WORKER_VALS 16
/* Generous: a step of 10000 opens takes minutes under KASAN + TCG. */
#define WORKER_STEP_TIMEOUT_MS 600000

struct worker_shm {
	volatile int go;	/* test process: next step to run */
	volatile int done;	/* worker: last step completed */
	volatile int err;	/* worker: errno of a failure, 0 if none */
	volatile long val[WORKER_VALS];	/* worker: results */
};

struct worker {
	pid_t pid;
	int status;		/* wait status once reaped */
	bool reaped;
	struct worker_shm *shm;
	const char *cg;
	void *arg;
};

typedef void (*worker_fn)(struct worker *w);

/* Worker side: wait until the test process starts @step. */
static inline void worker_wait(struct worker *w, int step)
{
	while (__atomic_load_n(&w->shm->go, __ATOMIC_ACQUIRE) < step)
		usleep(500);
}

/* Worker side: report @step as done. */
static inline void worker_done(struct worker *w, int step)
{
	__atomic_store_n(&w->shm->done, step, __ATOMIC_RELEASE);
}

/* Worker side: report a failure of @what and stop. */
static inline void __attribute__((noreturn))
worker_fail(struct worker *w, const char *what)
{
	w->shm->err = errno ? errno : -1;
	fprintf(stderr, "# worker %d: %s: %s\n", getpid(), what,
		strerror(errno));
	_exit(1);
}

/*
 * Fork a worker into @cg running @fn. The worker enters the cgroup before
 * anything else, then pre-faults its stack so that later steps do not need
 * to allocate page tables or stack pages in the memcg.
 */
static inline int worker_start(struct worker *w, const char *cg, worker_fn fn,
			       void *arg)
{
	memset(w, 0, sizeof(*w));
	w->cg = cg;
	w->arg = arg;
	w->shm = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (w->shm == MAP_FAILED)
		return -1;
	memset((void *)w->shm, 0, PAGE_SIZE);	/* fault it in, outside cg */
	fflush(stdout);
	fflush(stderr);
	w->pid = fork();
	if (w->pid < 0)
		return -1;
	if (w->pid == 0) {
		volatile char stack[64 << 10];

		if (cg && cg_enter_current(cg))
			worker_fail(w, "entering cgroup");
		memset((char *)stack, 0, sizeof(stack));
		fn(w);
		_exit(0);
	}
	return 0;
}

static inline bool worker_alive(struct worker *w)
{
	if (w->reaped)
		return false;
	if (w->pid <= 0)	/* not our child: only the timeout applies */
		return true;
	if (waitpid(w->pid, &w->status, WNOHANG) == w->pid) {
		w->reaped = true;
		return false;
	}
	return true;
}

/*
 * Test side: let the worker run @step and wait for it. Returns 0 when the
 * step completed, -1 when the worker died or failed or timed out.
 */
static inline int worker_step(struct worker *w, int step)
{
	long deadline = now_ms() + WORKER_STEP_TIMEOUT_MS;

	__atomic_store_n(&w->shm->go, step, __ATOMIC_RELEASE);
	while (__atomic_load_n(&w->shm->done, __ATOMIC_ACQUIRE) < step) {
		if (!worker_alive(w) || w->shm->err || now_ms() > deadline)
			return -1;
		usleep(500);
	}
	return 0;
}

/* Test side: let the worker finish, reap it; returns its wait status. */
static inline int worker_finish(struct worker *w)
{
	__atomic_store_n(&w->shm->go, INT_MAX, __ATOMIC_RELEASE);
	if (!w->reaped) {
		waitpid(w->pid, &w->status, 0);
		w->reaped = true;
	}
	return w->status;
}

/* Test side: kill and reap a worker that may still run. */
static inline void worker_kill(struct worker *w)
{
	if (w->pid > 0 && !w->reaped) {
		kill(w->pid, SIGKILL);
		waitpid(w->pid, &w->status, 0);
		w->reaped = true;
	}
}

/* Describe how a worker ended, for failure messages. */
static inline const char *worker_end(struct worker *w)
{
	static char buf[96];

	if (!w->reaped)
		snprintf(buf, sizeof(buf), "still running (err %d)", w->shm->err);
	else if (WIFSIGNALED(w->status))
		snprintf(buf, sizeof(buf), "killed by signal %d%s",
			 WTERMSIG(w->status),
			 WTERMSIG(w->status) == SIGKILL ? " (OOM kill?)" : "");
	else
		snprintf(buf, sizeof(buf), "exited with %d",
			 WEXITSTATUS(w->status));
	return buf;
}

/* In a test: run worker step @n, failing the test if it does not complete. */
#define ASSERT_STEP(w, n)						\
	ASSERT_EQ(0, worker_step(w, n))					\
		TH_LOG("worker step %d: %s", n, worker_end(w))

#endif /* GUEST_TESTS_COMMON_H */
