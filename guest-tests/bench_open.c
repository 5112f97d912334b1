// SPDX-License-Identifier: GPL-2.0
/*
 * Microbenchmarks of what memcg accounting of struct file costs the syscalls
 * that allocate one: open() of a missing file (ENOENT: allocated and freed
 * again), open()+close(), pipe()+close, socket()+close, eventfd()+close, and
 * dup()+close (no new struct file: the control).
 *
 * Each runs in the root cgroup, in a child memcg with no limit in sight and
 * (the open() cases) in a child memcg a few MiB below its memory.max, where
 * the series' cheap over-limit check runs, and in a memcg that sits at its
 * memory.max full of clean page cache (the normal state of a busy memcg; see
 * "At the limit" below). Under QEMU with `-icount shift=0,sleep=off` guest
 * time counts instructions, so the figures are deterministic; `harness bench`
 * parses the lines
 *
 *   # bench: op=<op> cgroup=<root|memcg|memcg_near_limit|memcg_at_limit|
 *            root_offline> iters=<n> ns_per_op=<f> round=<r>
 *   # bench_limit: op=<op> cgroup=memcg_at_limit opens=<n> events_max=<n>
 *            psi_some_us=<n|na> peak_delta=<bytes> max=<bytes> round=<r>
 *
 * Honest figures, as on any host that has a memcg (every systemd host):
 * - kmem accounting is online for every measurement, root included. The
 *   child memcg is created first and kept until the end: the first non-root
 *   memcg coming online (at mkdir) turns memcg_kmem_online() on for good.
 * - Steady state: before the first measurement every op runs WARMUP times
 *   untimed in the child memcg (so the filp slab and the others have their
 *   obj_exts vectors and the per-CPU stocks are primed), and every case again
 *   runs at least WARMUP times untimed right before it is timed.
 * The root figure with kmem accounting still offline (no memcg ever created)
 * is measured only on request ($BENCH_ROOT_OFFLINE=1), first thing, round 1.
 *
 * Iterations: argv[1], else $BENCH_ITERS (the kernel passes unknown
 * `NAME=value` boot parameters to init's environment), else 20000; more
 * when the clock is coarse (see min_span_ns).
 * Rounds (every case again, same boot): $BENCH_ROUNDS, else 1.
 * Output: TAP version 13, one test per case and round.
 *
 * At the limit: a memcg with memory.max LIMIT_BYTES reads a STREAM_BYTES file
 * on the guest's ext2 ramdisk (clean page cache reclaim can drop; tmpfs pages
 * could not be) until memory.events max shows it hit the limit. The ops then
 * run in segments of SEGMENT, each followed by an untimed STREAM_STEP of
 * reads that charges page cache and keeps the memcg at its limit. Only the
 * segments are timed, and memory.events max, the memcg's PSI `some` total and
 * memory.peak are read right around each one (through descriptors opened
 * beforehand, so the readings allocate nothing): what the opens did, not the
 * reads. No PSI in the kernel (no memory.pressure): psi_some_us=na.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/vfs.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "kselftest.h"
#include "cgroup_util.h"

#define CG_ROOT "/sys/fs/cgroup"
#define CG_CHILD CG_ROOT "/bench_open"
#define CG_NEAR CG_ROOT "/bench_open_near"
#define MISSING "bench-missing"
#define EXISTING "bench-existing"
#define DEFAULT_ITERS 20000L
/* Untimed runs of an op before it is timed (and of every op at the start). */
#define WARMUP 5000L
/*
 * Near-limit memcg: charge FILL_BYTES of anon memory, then set memory.max
 * HEADROOM above memory.current. HEADROOM is far more than a per-CPU charge
 * batch (64 pages) plus what an iteration allocates and frees again, so the
 * limit itself is never hit (checked: memory.events max stays 0).
 */
#define FILL_BYTES (16L << 20)
#define HEADROOM (4L << 20)
/* At the limit: see the top comment. The file is 3x the limit, so reading it
 * in a cycle keeps missing the page cache and charging. */
#define CG_LIMIT CG_ROOT "/bench_open_limit"
#define SCRATCH "/mnt/scratch"
#define STREAM_FILE SCRATCH "/bench-stream"
#define LIMIT_BYTES (8L << 20)
#define STREAM_BYTES (3 * LIMIT_BYTES)
#define STREAM_STEP (256L << 10)
#define SEGMENT 1000L
#define EXT2_MAGIC 0xEF53	/* ext2/3/4 share it */

static int dup_src = -1;

/* Each op returns 0 on success; the ENOENT one succeeds by failing. */
static int op_open_enoent(void)
{
	return open(MISSING, O_RDONLY) == -1 && errno == ENOENT ? 0 : -1;
}

static int op_open_close(void)
{
	int fd = open(EXISTING, O_RDONLY);

	return fd < 0 ? -1 : close(fd);
}

static int op_pipe_close(void)
{
	int p[2];

	if (pipe(p))
		return -1;
	return close(p[0]) | close(p[1]);
}

static int op_socket_close(void)
{
	int s = socket(AF_UNIX, SOCK_STREAM, 0);

	return s < 0 ? -1 : close(s);
}

static int op_eventfd_close(void)
{
	int e = eventfd(0, 0);

	return e < 0 ? -1 : close(e);
}

/* No new struct file: the control, accounting should not move it. */
static int op_dup_close(void)
{
	int d = dup(dup_src);

	return d < 0 ? -1 : close(d);
}

struct op {
	const char *name;
	int (*fn)(void);
	int near_limit;	/* also measured close to and at memory.max */
};

static const struct op ops[] = {
	{ "open_enoent", op_open_enoent, 1 },
	{ "open_close", op_open_close, 1 },
	{ "pipe_close", op_pipe_close, 0 },
	{ "socket_close", op_socket_close, 0 },
	{ "eventfd_close", op_eventfd_close, 0 },
	{ "dup_close", op_dup_close, 0 },
};
#define NOPS (sizeof(ops) / sizeof(ops[0]))

static long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/*
 * Without icount, a guest without HPET/ACPI may only have the jiffies
 * clocksource (4 ms steps). A measurement then has to span min_span_ns, 250
 * clock steps (<= 0.4 % quantization); with a fine clock it is 0.
 */
static long min_span_ns;
#define MAX_ITERS 20000000L

/*
 * The kernel switches to high-resolution timers only once a clocksource fit
 * for them is chosen: under TCG the refined TSC, ~1.1 s after boot. With the
 * guest's RNG ready at once (RDRAND) the bench starts before that, so wait
 * for it (at most CLOCK_WAIT_MS) rather than call a fine clock coarse.
 */
#define CLOCK_WAIT_MS 5000

static void init_clock(void)
{
	struct timespec res;

	for (int waited = 0; ; waited += 10) {
		clock_getres(CLOCK_MONOTONIC, &res);
		if ((!res.tv_sec && res.tv_nsec <= 1000) || waited >= CLOCK_WAIT_MS)
			break;
		usleep(10000);
	}
	ksft_print_msg("bench_open: clock resolution %ld ns\n", res.tv_nsec);
	if (res.tv_sec || res.tv_nsec > 1000)
		min_span_ns = 250 * (res.tv_sec * 1000000000L + res.tv_nsec);
}

static int warm_up(const struct op *op, long n)
{
	for (long i = 0; i < n; i++)
		if (op->fn())
			return -1;
	return 0;
}

/*
 * Waits until what this program printed has left the guest. The init's
 * reader copies our lines to the serial console; an 8250 still sending
 * them during a timed loop costs it interrupts whose number depends on how
 * fast the host drains the console, not on the kernel under test (seen:
 * socket()+close() in root 0.8 % apart between boots of the same kernel).
 */
static void quiesce_console(void)
{
	static int fd = -2;

	fflush(stdout);
	/* With -smp 1 the reader runs only once we sleep. */
	usleep(10000);
	if (fd == -2)
		fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0)
		tcdrain(fd);
}

/*
 * Runs @op *@iters times after a warm-up; returns ns per op or -1. A coarse
 * clock raises *@iters until the loop spans min_span_ns.
 */
static double measure(const struct op *op, long *iters)
{
	long i, t0, t1;

	/* Warm-up: dentries, slab obj_exts, per-CPU memcg stocks, caches, TLB. */
	if (warm_up(op, *iters / 4 > WARMUP ? *iters / 4 : WARMUP))
		return -1;
	quiesce_console();
	for (;;) {
		t0 = now_ns();
		for (i = 0; i < *iters; i++)
			if (op->fn())
				return -1;
		t1 = now_ns();
		if (t1 - t0 >= min_span_ns || *iters * 4 > MAX_ITERS)
			return (double)(t1 - t0) / *iters;
		*iters *= 4;
	}
}

/* @setup_err: why the memcg for @cg could not be set up, or NULL. */
static void run_case(const struct op *op, const char *cg, long iters, int round,
		     const char *setup_err)
{
	double ns;
	long hit;

	/* an error on the way to a measurement is a failure, not a skip */
	if (setup_err) {
		ksft_test_result_fail("%s.%s: %s\n", op->name, cg, setup_err);
		return;
	}
	ns = measure(op, &iters);
	if (ns < 0) {
		ksft_test_result_fail("%s.%s: %s\n", op->name, cg, strerror(errno));
		return;
	}
	/* Near the limit, the point is the over-limit check, never the limit. */
	hit = strcmp(cg, "memcg_near_limit") ? 0 :
	      cg_read_key_long(CG_NEAR, "memory.events", "max ");
	if (hit) {
		ksft_print_msg("memory.events max %ld: the limit was hit\n", hit);
		ksft_test_result_fail("%s.%s\n", op->name, cg);
		return;
	}
	ksft_print_msg("bench: op=%s cgroup=%s iters=%ld ns_per_op=%.1f round=%d\n",
		       op->name, cg, iters, ns, round);
	ksft_test_result_pass("%s.%s\n", op->name, cg);
}

static void run_all(const char *cg, long iters, int round, int near_limit_only,
		    const char *setup_err)
{
	for (size_t i = 0; i < NOPS; i++)
		if (!near_limit_only || ops[i].near_limit)
			run_case(&ops[i], cg, iters, round, setup_err);
}

static unsigned int count_cases(void)
{
	unsigned int n = 2 * NOPS;

	for (size_t i = 0; i < NOPS; i++)
		n += 2 * ops[i].near_limit;	/* near the limit, at the limit */
	return n;
}

/*
 * The child memcg, created once and kept: from its mkdir on, kmem
 * accounting is online (memcg_kmem_online()) for every measurement.
 */
static const char *create_memcg(void)
{
	if (cg_create(CG_CHILD) && errno != EEXIST)
		return "cannot create a child memcg";
	if (cg_read_strstr(CG_CHILD, "cgroup.controllers", "memory"))
		return "the child cgroup has no memory controller";
	return NULL;
}

static const char *enter_memcg(void)
{
	return cg_enter_current(CG_CHILD) ? "cannot move into the child memcg" : NULL;
}

/*
 * Let the kernel finish what it still does after boot before the first
 * timed case: on Debian's config, work left from boot ran during round 1
 * and doubled the first root open() (7182 instructions, 3556 in rounds 2
 * and 3). Sleeping hands the CPU to that work; under -icount sleep=off
 * idle guest time costs no host time.
 */
#define SETTLE_SECONDS	2

static void settle(void)
{
	ksft_print_msg("bench_open: settling for %d s before the first timed case\n",
		       SETTLE_SECONDS);
	sleep(SETTLE_SECONDS);
}

/* Every op WARMUP times in the child memcg, untimed, before any measurement. */
static const char *warm_up_all(void)
{
	const char *err = enter_memcg();

	if (err)
		return err;
	for (size_t i = 0; i < NOPS; i++)
		if (warm_up(&ops[i], WARMUP)) {
			cg_enter_current(CG_ROOT);
			return "an op failed during the warm-up";
		}
	return cg_enter_current(CG_ROOT) ? "cannot move back to the root cgroup" : NULL;
}

/* In a fresh child memcg, charge FILL_BYTES and put memory.max HEADROOM above. */
static const char *enter_near_limit(void **fill)
{
	long cur;

	if (cg_create(CG_NEAR) && errno != EEXIST)
		return "cannot create the near-limit memcg";
	if (cg_enter_current(CG_NEAR))
		return "cannot move into the near-limit memcg";
	*fill = mmap(NULL, FILL_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		     -1, 0);
	if (*fill == MAP_FAILED) {
		*fill = NULL;
		return "mmap failed";
	}
	memset(*fill, 1, FILL_BYTES);
	cur = cg_read_long(CG_NEAR, "memory.current");
	if (cur < FILL_BYTES || cg_write_numeric(CG_NEAR, "memory.max", cur + HEADROOM))
		return "cannot set memory.max";
	ksft_print_msg("near limit: memory.current %ld, memory.max %ld\n", cur,
		       cur + HEADROOM);
	return NULL;
}

static void leave(const char *cg, void *fill)
{
	if (fill)
		munmap(fill, FILL_BYTES);
	cg_enter_current(CG_ROOT);
	if (cg)
		cg_destroy(cg);
}

/* --- at the limit, with page cache ------------------------------------- */

static char stream_buf[64 << 10];

/*
 * Why the at-limit case cannot run in this guest (a skip): no disk for page
 * cache reclaim can drop, or a clock too coarse for runs of SEGMENT ops.
 */
static const char *at_limit_skip(void)
{
	struct statfs sfs;

	if (statfs(SCRATCH, &sfs) || sfs.f_type != EXT2_MAGIC)
		return "no page-cache disk: " SCRATCH " is not ext2 on the ramdisk";
	if (min_span_ns)
		return "the clock is too coarse to time runs of 1000 ops";
	return NULL;
}

/* In root, once: the file the memcg streams, on ext2, not in the page cache. */
static const char *prepare_stream(void)
{
	long done;
	int fd;

	fd = open(STREAM_FILE, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	if (fd < 0)
		return "cannot create " STREAM_FILE;
	memset(stream_buf, 0x5a, sizeof(stream_buf));
	for (done = 0; done < STREAM_BYTES; done += sizeof(stream_buf))
		if (write(fd, stream_buf, sizeof(stream_buf)) != sizeof(stream_buf)) {
			close(fd);
			return "cannot write " STREAM_FILE;
		}
	/* Written back and dropped: every page the memcg reads is charged to it. */
	if (fsync(fd) || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)) {
		close(fd);
		return "cannot drop " STREAM_FILE " from the page cache";
	}
	close(fd);
	return NULL;
}

struct limit {
	int stream, events, pressure, peak;	/* pressure -1: no PSI */
};

struct counters {
	long events_max, psi_some_us, peak;
};

/* Reads BYTES more of the file, from where the last read stopped, in a cycle. */
static int stream(struct limit *l, long bytes)
{
	while (bytes > 0) {
		ssize_t n = read(l->stream, stream_buf, sizeof(stream_buf));

		if (n == 0 && lseek(l->stream, 0, SEEK_SET) == 0)
			continue;
		if (n <= 0)
			return -1;
		bytes -= n;
	}
	return 0;
}

/* The value after KEY in the text of FD (read again from offset 0), or -1. */
static long pread_key(int fd, const char *key)
{
	char buf[512], *p;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = key ? strstr(buf, key) : buf;
	return p ? atol(p + (key ? strlen(key) : 0)) : -1;
}

static int read_counters(struct limit *l, struct counters *c)
{
	char buf[512], *p;
	ssize_t n;

	c->events_max = pread_key(l->events, "max ");
	c->peak = pread_key(l->peak, NULL);
	c->psi_some_us = 0;
	if (l->pressure >= 0) {
		n = pread(l->pressure, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			return -1;
		buf[n] = '\0';
		p = strstr(buf, "some ");
		p = p ? strstr(p, "total=") : NULL;
		if (!p)
			return -1;
		c->psi_some_us = atol(p + strlen("total="));
	}
	return c->events_max < 0 || c->peak < 0 ? -1 : 0;
}

static void close_limit(struct limit *l)
{
	int *fds[] = { &l->stream, &l->events, &l->pressure, &l->peak };

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* A fresh memcg with memory.max LIMIT_BYTES, filled to it with page cache. */
static const char *enter_at_limit(struct limit *l)
{
	long hit, cur;

	if (cg_create(CG_LIMIT) && errno != EEXIST)
		return "cannot create the at-limit memcg";
	if (cg_write_numeric(CG_LIMIT, "memory.max", LIMIT_BYTES))
		return "cannot set memory.max";
	if (cg_enter_current(CG_LIMIT))
		return "cannot move into the at-limit memcg";
	l->stream = open(STREAM_FILE, O_RDONLY);
	l->events = open(CG_LIMIT "/memory.events", O_RDONLY);
	l->peak = open(CG_LIMIT "/memory.peak", O_RDONLY);
	l->pressure = open(CG_LIMIT "/memory.pressure", O_RDONLY);
	if (l->stream < 0 || l->events < 0 || l->peak < 0)
		return "cannot open the stream file or the memcg's files";
	if (stream(l, STREAM_BYTES))
		return "cannot read " STREAM_FILE;
	hit = pread_key(l->events, "max ");
	cur = cg_read_long(CG_LIMIT, "memory.current");
	ksft_print_msg("at limit: memory.max %ld, memory.current %ld, memory.events max %ld "
		       "after reading %ld bytes\n", LIMIT_BYTES, cur, hit, STREAM_BYTES);
	if (hit <= 0)
		return "the page cache never took the memcg to its memory.max";
	return NULL;
}

/*
 * Times *@iters runs of @op in segments of SEGMENT, with STREAM_STEP of reads
 * after each; adds what the segments alone changed to @d. Returns ns per op or -1.
 */
static double measure_at_limit(const struct op *op, long iters, struct limit *l,
			       struct counters *d)
{
	struct counters a, b;
	long done, n, i, t0, t1, ns = 0;

	/* The warm-up streams too: the segments start as the timed ones will. */
	for (done = 0; done < WARMUP; done += SEGMENT)
		if (warm_up(op, SEGMENT) || stream(l, STREAM_STEP))
			return -1;
	quiesce_console();
	*d = (struct counters){ 0, 0, 0 };
	for (done = 0; done < iters; done += n) {
		n = iters - done < SEGMENT ? iters - done : SEGMENT;
		if (read_counters(l, &a))
			return -1;
		t0 = now_ns();
		for (i = 0; i < n; i++)
			if (op->fn())
				return -1;
		t1 = now_ns();
		if (read_counters(l, &b))
			return -1;
		ns += t1 - t0;
		d->events_max += b.events_max - a.events_max;
		d->psi_some_us += b.psi_some_us - a.psi_some_us;
		d->peak += b.peak - a.peak;
		if (stream(l, STREAM_STEP))
			return -1;
	}
	return (double)ns / iters;
}

/* SKIP: the case cannot run here; FAIL: preparing it failed. */
static void run_at_limit(long iters, int round, const char *skip, const char *fail)
{
	struct limit l = { -1, -1, -1, -1 };

	if (!skip && !fail)
		fail = enter_at_limit(&l);

	for (size_t i = 0; i < NOPS; i++) {
		const struct op *op = &ops[i];
		struct counters d;
		char psi[24] = "na";
		double ns;

		if (!op->near_limit)
			continue;
		if (skip) {
			ksft_test_result_skip("%s.memcg_at_limit: %s\n", op->name, skip);
			continue;
		}
		if (fail) {
			ksft_test_result_fail("%s.memcg_at_limit: %s\n", op->name, fail);
			continue;
		}
		ns = measure_at_limit(op, iters, &l, &d);
		if (ns < 0) {
			ksft_test_result_fail("%s.memcg_at_limit: %s\n", op->name, strerror(errno));
			continue;
		}
		if (l.pressure >= 0)
			snprintf(psi, sizeof(psi), "%ld", d.psi_some_us);
		ksft_print_msg("bench: op=%s cgroup=memcg_at_limit iters=%ld ns_per_op=%.1f "
			       "round=%d\n", op->name, iters, ns, round);
		ksft_print_msg("bench_limit: op=%s cgroup=memcg_at_limit opens=%ld "
			       "events_max=%ld psi_some_us=%s peak_delta=%ld max=%ld round=%d\n",
			       op->name, iters, d.events_max, psi, d.peak, LIMIT_BYTES, round);
		ksft_test_result_pass("%s.memcg_at_limit\n", op->name);
	}
	if (!skip && !fail && l.pressure < 0)
		ksft_print_msg("at limit: no memory.pressure (a kernel without CONFIG_PSI, or "
			       "psi=0): psi_some_us=na\n");
	close_limit(&l);
	leave(skip ? NULL : CG_LIMIT, NULL);
}

int main(int argc, char **argv)
{
	const char *env_iters = getenv("BENCH_ITERS"), *env_rounds = getenv("BENCH_ROUNDS");
	const char *env_offline = getenv("BENCH_ROOT_OFFLINE");
	long iters = argc > 1 ? atol(argv[1]) : env_iters ? atol(env_iters) : DEFAULT_ITERS;
	int rounds = env_rounds ? atoi(env_rounds) : 1;
	int offline = env_offline && atoi(env_offline) > 0;
	const char *no_memcg = NULL, *limit_skip, *limit_fail = NULL;
	int fd;

	if (iters <= 0)
		iters = DEFAULT_ITERS;
	if (rounds <= 0)
		rounds = 1;
	ksft_print_header();
	fd = open(EXISTING, O_CREAT | O_WRONLY, 0644);
	dup_src = open("/dev/null", O_RDONLY);
	if (fd < 0 || dup_src < 0)
		ksft_exit_fail_msg("cannot create %s or open /dev/null: %s\n", EXISTING,
				   strerror(errno));
	close(fd);
	unlink(MISSING);
	if (cg_read_strstr(CG_ROOT, "cgroup.subtree_control", "memory"))
		no_memcg = "no memory controller for children of " CG_ROOT;

	ksft_set_plan(count_cases() * rounds + (offline ? NOPS : 0));
	ksft_print_msg("bench_open: iters=%ld rounds=%d warm-up=%ld\n", iters, rounds, WARMUP);
	init_clock();
	if (offline)	/* before any memcg exists: kmem accounting offline */
		run_all("root_offline", iters, 1, 0, NULL);
	if (!no_memcg)
		no_memcg = create_memcg();
	if (!no_memcg)
		no_memcg = warm_up_all();
	if (no_memcg)
		ksft_exit_fail_msg("%s: the root figures would be taken with kmem accounting "
				   "offline\n", no_memcg);
	ksft_print_msg("bench_open: steady state, kmem accounting online (memcg %s kept "
		       "from before the first measurement)\n", CG_CHILD);
	limit_skip = at_limit_skip();
	if (!limit_skip)
		limit_fail = prepare_stream();
	settle();
	for (int r = 1; r <= rounds; r++) {
		void *fill = NULL;

		run_all("root", iters, r, 0, NULL);

		run_all("memcg", iters, r, 0, enter_memcg());
		leave(NULL, NULL);

		run_all("memcg_near_limit", iters, r, 1, enter_near_limit(&fill));
		leave(CG_NEAR, fill);

		run_at_limit(iters, r, limit_skip, limit_fail);
	}
	cg_destroy(CG_CHILD);
	unlink(EXISTING);
	unlink(STREAM_FILE);
	ksft_finished();
}
