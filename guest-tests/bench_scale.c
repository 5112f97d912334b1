// SPDX-License-Identifier: GPL-2.0
/*
 * How the syscalls that allocate a struct file scale with the number of
 * CPUs, in wall-clock time: the idea of LKP's will-it-scale (open1, open2,
 * open3), written here from scratch.
 *
 * For N = 1 .. online CPUs, N processes, process i pinned to CPU i, each run
 * one case in a loop for a fixed time:
 *   open1   open()+close() of its own file, all files in one directory
 *   open2   open()+close() of its own file in its own directory
 *   open3   open()+close() of one file shared by all processes
 *   enoent  a failed open() (ENOENT) of its own name in one directory
 *   pipe    pipe()+close() of both ends
 * once with every process in a child memcg (no limit in sight) and once in
 * the root cgroup; the child memcg exists from the start, so kmem accounting
 * is online for the root figures as well.
 *
 * The processes count their own operations into a cache line each of a
 * MAP_SHARED page; the parent lets them warm up, reads the counters, sleeps
 * for the measurement time, reads them again, and then stops them. It prints
 *
 *   # scale: case=<c> cgroup=<root|memcg> procs=<N> ops_per_sec=<per process, mean>
 *            min=<slowest process> max=<fastest> seconds=<f> round=<r>
 *
 * Wall clock: the figures depend on the host, its load and the accelerator;
 * only ratios between kernels booted the same way mean anything
 * (`harness bench --scale` interleaves the boots).
 *
 * Environment (unknown NAME=value boot parameters reach init's environment):
 * $BENCH_SECONDS measurement time per case (default 2), $BENCH_WARMUP_MS
 * untimed time before it (default 300), $BENCH_ROUNDS (default 1),
 * $BENCH_MAX_PROCS (default: online CPUs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kselftest.h"
#include "cgroup_util.h"

#define CG_ROOT "/sys/fs/cgroup"
#define CG_CHILD CG_ROOT "/bench_scale"
#define MAX_PROCS 64
#define PATH_LEN 64

struct counter {
	volatile unsigned long ops;
	volatile int failed;	/* errno of an op that went wrong */
	char pad[64 - sizeof(unsigned long) - sizeof(int)];
} __attribute__((aligned(64)));

struct shared {
	volatile int go;
	volatile int stop;
	char pad[64 - 2 * sizeof(int)];
	struct counter c[MAX_PROCS];
};

static struct shared *sh;
static char path[PATH_LEN];	/* this process's file, set before the loop */

static int op_open_close(void)
{
	int fd = open(path, O_RDONLY);

	return fd < 0 ? -1 : close(fd);
}

static int op_enoent(void)
{
	return open(path, O_RDONLY) == -1 && errno == ENOENT ? 0 : -1;
}

static int op_pipe(void)
{
	int p[2];

	if (pipe(p))
		return -1;
	return close(p[0]) | close(p[1]);
}

struct scase {
	const char *name;
	int (*fn)(void);
	const char *fmt;	/* path of process i's file, "" if none */
};

static const struct scase cases[] = {
	{ "open1", op_open_close, "open1/file-%d" },
	{ "open2", op_open_close, "open2-%d/file" },
	{ "open3", op_open_close, "open3/shared" },
	{ "enoent", op_enoent, "enoent/missing-%d" },
	{ "pipe", op_pipe, "" },
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_for(double seconds)
{
	struct timespec ts = { (time_t)seconds,
			       (long)((seconds - (time_t)seconds) * 1e9) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int touch(const char *p)
{
	int fd = open(p, O_CREAT | O_WRONLY, 0644);

	return fd < 0 ? -1 : close(fd);
}

/* Every file and directory the cases use, for up to @nprocs processes. */
static int prepare_files(int nprocs)
{
	char p[PATH_LEN];

	if ((mkdir("open1", 0755) && errno != EEXIST) ||
	    (mkdir("open3", 0755) && errno != EEXIST) ||
	    (mkdir("enoent", 0755) && errno != EEXIST) || touch("open3/shared"))
		return -1;
	for (int i = 0; i < nprocs; i++) {
		snprintf(p, sizeof(p), "open1/file-%d", i);
		if (touch(p))
			return -1;
		snprintf(p, sizeof(p), "open2-%d", i);
		if (mkdir(p, 0755) && errno != EEXIST)
			return -1;
		snprintf(p, sizeof(p), "open2-%d/file", i);
		if (touch(p))
			return -1;
		snprintf(p, sizeof(p), "enoent/missing-%d", i);
		unlink(p);
	}
	return 0;
}

static void worker(const struct scase *sc, int i, int ncpus)
{
	struct counter *c = &sh->c[i];
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(i % ncpus, &set);
	sched_setaffinity(0, sizeof(set), &set);
	snprintf(path, sizeof(path), sc->fmt, i);
	while (!sh->go)
		usleep(1000);
	while (!sh->stop) {
		if (sc->fn()) {
			c->failed = errno ? errno : EIO;
			_exit(1);
		}
		c->ops++;
	}
	_exit(0);
}

static unsigned long read_ops(int n, unsigned long *ops)
{
	unsigned long sum = 0;

	for (int i = 0; i < n; i++)
		sum += ops[i] = sh->c[i].ops;
	return sum;
}

static void run_case(const struct scase *sc, const char *cg, int n, int ncpus,
		     double seconds, double warmup, int round)
{
	unsigned long before[MAX_PROCS], after[MAX_PROCS];
	double t0, t1, mean, lo = 0, hi = 0;
	pid_t pids[MAX_PROCS];
	int failed = 0, i;

	memset(sh, 0, sizeof(*sh));
	for (i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			break;
		if (pids[i] == 0)
			worker(sc, i, ncpus);
	}
	if (i < n) {
		sh->stop = sh->go = 1;
		while (--i >= 0)
			waitpid(pids[i], NULL, 0);
		ksft_test_result_fail("%s.%s.%d: fork: %s\n", sc->name, cg, n, strerror(errno));
		return;
	}
	sh->go = 1;
	sleep_for(warmup);
	t0 = now();
	read_ops(n, before);
	sleep_for(seconds);
	read_ops(n, after);
	t1 = now();
	sh->stop = 1;
	for (i = 0; i < n; i++) {
		int status;

		if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status)) {
			ksft_print_msg("%s.%s.%d: process %d failed: %s\n", sc->name, cg, n, i,
				       strerror(sh->c[i].failed));
			failed = 1;
		}
	}
	if (failed) {
		ksft_test_result_fail("%s.%s.%d\n", sc->name, cg, n);
		return;
	}
	mean = 0;
	for (i = 0; i < n; i++) {
		double r = (after[i] - before[i]) / (t1 - t0);

		mean += r / n;
		lo = i == 0 || r < lo ? r : lo;
		hi = i == 0 || r > hi ? r : hi;
	}
	ksft_print_msg("scale: case=%s cgroup=%s procs=%d ops_per_sec=%.1f min=%.1f max=%.1f "
		       "seconds=%.3f round=%d\n", sc->name, cg, n, mean, lo, hi, t1 - t0, round);
	ksft_test_result_pass("%s.%s.%d\n", sc->name, cg, n);
}

static double env_double(const char *name, double def)
{
	const char *v = getenv(name);
	double d = v ? atof(v) : 0;

	return d > 0 ? d : def;
}

int main(void)
{
	double seconds = env_double("BENCH_SECONDS", 2.0);
	double warmup = env_double("BENCH_WARMUP_MS", 300) / 1000;
	int rounds = (int)env_double("BENCH_ROUNDS", 1);
	int ncpus = sysconf(_SC_NPROCESSORS_ONLN);
	int maxp = (int)env_double("BENCH_MAX_PROCS", ncpus);
	const char *cgs[] = { "memcg", "root" };

	ksft_print_header();
	if (ncpus < 1)
		ncpus = 1;
	if (maxp > MAX_PROCS)
		maxp = MAX_PROCS;
	ksft_print_msg("bench_scale: cpus=%d procs=1..%d seconds=%.3f warmup=%.3f rounds=%d\n",
		       ncpus, maxp, seconds, warmup, rounds);
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		ksft_exit_fail_msg("mmap: %s\n", strerror(errno));
	if (prepare_files(maxp))
		ksft_exit_fail_msg("cannot create the files: %s\n", strerror(errno));
	if (cg_read_strstr(CG_ROOT, "cgroup.subtree_control", "memory"))
		ksft_exit_fail_msg("no memory controller for children of " CG_ROOT "\n");
	/* Kept to the end: kmem accounting is online for the root figures too. */
	if ((cg_create(CG_CHILD) && errno != EEXIST) ||
	    cg_read_strstr(CG_CHILD, "cgroup.controllers", "memory"))
		ksft_exit_fail_msg("cannot create a child memcg\n");
	ksft_set_plan(rounds * 2 * NCASES * maxp);
	for (int r = 1; r <= rounds; r++)
		for (size_t c = 0; c < 2; c++) {
			if (cg_enter_current(c == 0 ? CG_CHILD : CG_ROOT))
				ksft_exit_fail_msg("cannot move into %s\n", cgs[c]);
			for (size_t k = 0; k < NCASES; k++)
				for (int n = 1; n <= maxp; n++)
					run_case(&cases[k], cgs[c], n, ncpus, seconds, warmup, r);
		}
	cg_enter_current(CG_ROOT);
	cg_destroy(CG_CHILD);
	ksft_finished();
}
