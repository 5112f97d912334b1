// SPDX-License-Identifier: GPL-2.0
/*
 * Memcg charging of struct file on several CPUs at once.
 *
 * The series charges a file to the memcg of the task that first installs it
 * in an fd table, forced (at fd_install() it cannot fail), and makes open()
 * fail with ENOMEM once less than a small reserve is left below memory.max.
 * On one CPU none of its races happen: many tasks between allocating a file
 * and installing it, one file installed by two tasks at the same moment,
 * charges and uncharges racing with tasks that move between memcgs, per-CPU
 * charge stocks filled and drained on other CPUs. These tests run them on
 * every CPU the guest has (the default profile boots 2).
 *
 * As in file_charge, the tasks that open files are workers (common.h) in
 * child memcgs; the test process stays in the root cgroup and measures.
 */
#define _GNU_SOURCE
#include <sched.h>

#include "kselftest_harness.h"
#include "common.h"
#include "churn.h"

/* --- many openers fill one memcg ------------------------------------- */

/* memory.max is set to memory.current + FILL_HEADROOM once all are ready. */
#define FILL_HEADROOM		(1L << 20)
/*
 * Files one opener may hold: more than the whole headroom takes in struct
 * files (~5000 at 200 bytes), so an opener stops only on an error.
 */
#define FILL_MAX_OPENS		8192
/* Files all openers together must have opened: a quarter of the headroom. */
#define FILL_MIN_OPENS		(FILL_HEADROOM / 4 / 400)
/* Generous: the openers need seconds under TCG, minutes under KASAN. */
#define FILL_TIMEOUT_MS		600000
/* MEMCG_CHARGE_BATCH in include/linux/memcontrol.h */
#define MEMCG_CHARGE_BATCH	64

/*
 * How far usage may end up above memory.max, from the series' design
 * (patches 0004 and 0005, and the cover letter's "Forced charges can still
 * take usage above memory.max ... by at most about one page per task
 * between alloc_empty_file() and fd_install()"):
 *
 *  - Usage goes over the limit only through the charge forced at
 *    fd_install() (kmem_cache_charge_forced()); every other charge here
 *    fails or reclaims first.
 *  - alloc_empty_file() calls memcg_kmem_check_room() before allocating,
 *    and refuses the file once less than 32 KiB fits below memory.max
 *    after reclaim; the hint that sends it to the counters is set by
 *    every charge that does not fit. So an opener force-charges at most
 *    the one file it had between the check and fd_install(): its next
 *    open() gets ENOMEM.
 *  - A forced charge of a struct file takes at most one page from the
 *    counter (try_charge_memcg() forces nr_pages, never a 64-page batch);
 *    the rest of the page stays in the CPU's objcg byte stock, which is
 *    counted in memory.current: ntasks pages.
 *  - The hint is a plain bool set and cleared with racy stores: "a lost
 *    update costs ... one object more that is force-charged" (patch 0004).
 *    A lost store is one CPU's clear racing with another CPU's set: one
 *    more page per CPU.
 *
 *   overshoot <= (ntasks + ncpus) * PAGE_SIZE
 *
 * 16 KiB for 2 openers on 2 CPUs, 40 KiB for 8. It is asserted for the
 * usage once every opener stopped (memory.current, nothing in flight) and
 * for memory.peak - memory.max; the measured figure is printed as
 * "# overshoot_bytes=N" (the larger of the two; negative: the limit was
 * never reached). Not asserted, only printed: memory.current sampled while
 * the openers run. page_counter_try_charge() adds a whole 64-page batch to
 * the counter and takes it back when it does not fit, so a sample can see
 * up to 64 pages per CPU that were never charged (seen with v1: 184 KiB).
 *
 * Measured on the series v2 (default profile, 2 CPUs, 7 boots, both
 * tests): usage never went above memory.max. Once the openers stopped,
 * memory.current - memory.max was -28 KiB (the reserve) in 13 of 14 runs
 * and -52 KiB in one; memory.peak - memory.max 0 in 13, -28 KiB in one;
 * the samples at most -28 KiB. Vanilla: peak - max 0, the openers
 * OOM-killed.
 */
static long overshoot_bound(long ntasks, long ncpus)
{
	return (ntasks + ncpus) * PAGE_SIZE;
}

FIXTURE(concurrency) {
	char parent[PATH_MAX];
	char a[PATH_MAX];
	char b[PATH_MAX];
	char c[PATH_MAX];
	long slack;		/* accepted error of a slab reading */
	long lo, hi;		/* accepted bytes per struct file */
};

FIXTURE_SETUP(concurrency)
{
	long filp = filp_charge_size();

	enable_memory_controller(CGROUP_ROOT);
	ASSERT_EQ(0, make_cgroup(self->parent, sizeof(self->parent), NULL,
				 "file_concurrency"));
	ASSERT_EQ(0, enable_memory_controller(self->parent));
	ASSERT_EQ(0, make_cgroup(self->a, sizeof(self->a), self->parent, "a"));
	ASSERT_EQ(0, make_cgroup(self->b, sizeof(self->b), self->parent, "b"));
	ASSERT_EQ(0, make_cgroup(self->c, sizeof(self->c), self->parent, "c"));
	self->slack = stat_slack();
	/* one struct file, within 10 %; without /sys/kernel/slab, 150-400 */
	self->lo = filp > 0 ? filp - filp / 10 : 150;
	self->hi = filp > 0 ? filp + filp / 10 : 400;
}

FIXTURE_TEARDOWN_PARENT(concurrency)
{
	remove_cgroup(self->a);
	remove_cgroup(self->b);
	remove_cgroup(self->c);
	remove_cgroup(self->parent);
}

static long online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? n : 1;
}

/*
 * Step 1: everything an opener touches later is allocated and faulted in
 * (fd table, descriptor array, stack), so that at the limit nothing but
 * struct files is charged. Step 2: open until open() fails; val[0] files,
 * val[1] the errno (0 if FILL_MAX_OPENS were opened). Step 3: close them.
 */
static void fill_opener(struct worker *w)
{
	int *fds = calloc(FILL_MAX_OPENS, sizeof(int));
	int n;

	if (!fds || prepare_fd_table(FILL_MAX_OPENS + 64))
		worker_fail(w, "prepare");
	memset(fds, 0xff, FILL_MAX_OPENS * sizeof(int));
	close_many(fds, open_many("/dev/null", O_RDONLY, fds, 64));
	worker_done(w, 1);

	worker_wait(w, 2);
	errno = 0;
	n = open_many("/dev/null", O_RDONLY, fds, FILL_MAX_OPENS);
	w->shm->val[0] = n;
	w->shm->val[1] = n < FILL_MAX_OPENS ? errno : 0;
	worker_done(w, 2);

	worker_wait(w, 3);
	close_many(fds, n);
	worker_done(w, 3);
	worker_wait(w, 4);
}

static long read_long_fd(int fd)
{
	char buf[64];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return -1;
	buf[n] = 0;
	return atol(buf);
}

static void fill_memcg(struct __test_metadata *_metadata,
		       FIXTURE_DATA(concurrency) *self, int ntasks)
{
	long ncpus = online_cpus(), bound = overshoot_bound(ntasks, ncpus);
	long max, current_over = LONG_MIN, peak_over, oom_kills, deadline;
	long settled_over;
	long files = 0, samples = 0;
	int i, running, enomem = 0, other_err = 0, unlimited = 0, killed = 0;
	int other_death = 0, stuck = 0, cur_fd;
	struct worker *w = calloc(ntasks, sizeof(*w));
	const char *cg = self->a;
	char path[PATH_MAX + 32];

	ASSERT_NE(NULL, w);
	for (i = 0; i < ntasks; i++)
		ASSERT_EQ(0, worker_start(&w[i], cg, fill_opener, NULL));
	for (i = 0; i < ntasks; i++)
		ASSERT_STEP(&w[i], 1);
	oom_kills = memcg_event(cg, "oom_kill ");
	ASSERT_EQ(0, cg_write_numeric(cg, "memory.max",
				      cg_read_long(cg, "memory.current") +
				      FILL_HEADROOM));
	max = cg_read_long(cg, "memory.max");
	snprintf(path, sizeof(path), "%s/memory.current", cg);
	cur_fd = open(path, O_RDONLY);
	ASSERT_LE(0, cur_fd);

	/* All at once; then watch memory.current until every opener stopped. */
	for (i = 0; i < ntasks; i++)
		__atomic_store_n(&w[i].shm->go, 2, __ATOMIC_RELEASE);
	deadline = now_ms() + FILL_TIMEOUT_MS;
	do {
		long over = read_long_fd(cur_fd) - max;

		if (over > current_over)
			current_over = over;
		samples++;
		running = 0;
		for (i = 0; i < ntasks; i++)
			if (__atomic_load_n(&w[i].shm->done, __ATOMIC_ACQUIRE) < 2 &&
			    ((samples & 255) || worker_alive(&w[i])))
				running++;
	} while (running && now_ms() < deadline);
	close(cur_fd);
	/* every opener stopped (or is stuck): no charge in flight */
	settled_over = cg_read_long(cg, "memory.current") - max;
	peak_over = cg_read_long(cg, "memory.peak") - max;

	for (i = 0; i < ntasks; i++) {
		if (w[i].shm->done >= 2) {
			files += w[i].shm->val[0];
			if (w[i].shm->val[1] == ENOMEM)
				enomem++;
			else if (w[i].shm->val[1] == 0)
				unlimited++;
			else
				other_err++;
			if (w[i].shm->val[1] && w[i].shm->val[1] != ENOMEM)
				TH_LOG("opener %d: %ld files, then %s", i,
				       w[i].shm->val[0],
				       strerror(w[i].shm->val[1]));
		}
	}
	/* let them close, then count how each ended */
	for (i = 0; i < ntasks; i++) {
		if (w[i].shm->done < 2 && worker_alive(&w[i])) {
			stuck++;	/* still opening at the deadline */
			worker_kill(&w[i]);
			continue;
		}
		if (worker_alive(&w[i]))
			worker_step(&w[i], 3);
		worker_finish(&w[i]);
		if (WIFSIGNALED(w[i].status) && WTERMSIG(w[i].status) == SIGKILL)
			killed++;
		else if (!WIFEXITED(w[i].status) || WEXITSTATUS(w[i].status))
			other_death++;
	}
	oom_kills = memcg_event(cg, "oom_kill ") - oom_kills;

	ksft_print_msg("%d openers on %ld CPUs: %ld files, %d ENOMEM, %d other errors, %d never failed, %d killed (oom_kill %ld)\n",
		       ntasks, ncpus, files, enomem, other_err, unlimited,
		       killed, oom_kills);
	ksft_print_msg("memory.current - memory.max: %ld once the openers stopped, at most %ld in %ld samples while they ran (not asserted); memory.peak - memory.max: %ld; bound %ld\n",
		       settled_over, current_over, samples, peak_over, bound);
	ksft_print_msg("overshoot_bytes=%ld\n",
		       settled_over > peak_over ? settled_over : peak_over);
	free(w);

	EXPECT_EQ(0, stuck) TH_LOG("openers still opening after %d s",
				   FILL_TIMEOUT_MS / 1000);
	EXPECT_EQ(0, oom_kills) TH_LOG("openers were OOM-killed");
	EXPECT_EQ(0, killed);
	EXPECT_EQ(0, other_death);
	EXPECT_EQ(ntasks, enomem)
		TH_LOG("every opener must stop on ENOMEM");
	EXPECT_GE(files, FILL_MIN_OPENS);
	EXPECT_LE(settled_over, bound);
	EXPECT_LE(peak_over, bound);
}

TEST_F_TIMEOUT(concurrency, openers_fill_memcg_per_cpu, 900)
{
	fill_memcg(_metadata, self, online_cpus());
}

TEST_F_TIMEOUT(concurrency, openers_fill_memcg_4x_tasks, 900)
{
	fill_memcg(_metadata, self, 4 * online_cpus());
}

/* --- one file installed by two tasks at the same moment --------------- */

/*
 * What this does not test: the series' pending flag. A file is
 * FMODE_CHARGE_PENDING from alloc_empty_file() until its opener's first
 * fd_install() (or io_fixed_fd_install(), do_open_execat()), which clears
 * it before the file is published in the fd table (patch 0005). Only then
 * can any other task reach the file, and SCM_RIGHTS takes its files from
 * the sender's fd table (scm_fp_copy() -> fget_raw()), so a file in flight
 * has been charged to the sender already, whatever userspace does. What
 * the receivers race on here is the install of an already charged file by
 * two tasks in two memcgs at once: neither may charge it again, and the
 * charge must stay with the sender's memcg (or, opened in the root, none).
 */

/* Files raced; each round one file reaches both receivers. */
#define RACE_FILES		1000

/* The rounds, in a page shared by the sender and both receivers. */
struct race {
	volatile int round;	/* sender: file @round is in both sockets */
	volatile int ack[2];	/* receiver k: took file @ack[k] */
	int sk[2];		/* receiver k reads sk[k]; the sender writes peer[k] */
	int peer[2];
};

static void spin_until(volatile int *v, int at_least)
{
	while (__atomic_load_n(v, __ATOMIC_ACQUIRE) < at_least)
		sched_yield();
}

static int send_fd(int sk, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	char byte = 0;
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	return sendmsg(sk, &msg, 0) == 1 ? 0 : -1;
}

static int recv_fd(int sk)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	char byte;
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm;
	int fd;

	if (recvmsg(sk, &msg, 0) != 1 || (msg.msg_flags & MSG_CTRUNC))
		return -1;
	cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_type != SCM_RIGHTS ||
	    cm->cmsg_len != CMSG_LEN(sizeof(int)))
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	return fd;
}

/* Step 1 of every race worker: room for RACE_FILES descriptors. */
static int *race_prepare(struct worker *w)
{
	int *fds = calloc(RACE_FILES, sizeof(int));

	if (!fds || prepare_fd_table(RACE_FILES + 64))
		worker_fail(w, "prepare");
	memset(fds, 0xff, RACE_FILES * sizeof(int));
	worker_done(w, 1);
	return fds;
}

/* Step 3 of every race worker: close what it holds, then wait to be ended. */
static void race_close(struct worker *w, int *fds)
{
	worker_wait(w, 3);
	close_many(fds, RACE_FILES);
	worker_done(w, 3);
	worker_wait(w, 4);
}

/*
 * Step 1: ready. Step 2: each round, open a file and send it to both
 * receivers, then wait until both took it. Step 3: close all.
 */
static void race_sender(struct worker *w)
{
	struct race *r = w->arg;
	int *fds = race_prepare(w);
	int i;

	worker_wait(w, 2);
	for (i = 1; i <= RACE_FILES; i++) {
		fds[i - 1] = open("/dev/null", O_RDONLY);
		if (fds[i - 1] < 0 || send_fd(r->peer[0], fds[i - 1]) ||
		    send_fd(r->peer[1], fds[i - 1]))
			worker_fail(w, "open and send");
		__atomic_store_n(&r->round, i, __ATOMIC_RELEASE);
		spin_until(&r->ack[0], i);
		spin_until(&r->ack[1], i);
	}
	worker_done(w, 2);
	race_close(w, fds);
}

/* Both receivers wait spinning for a round and take its file at once. */
static void race_receiver(struct worker *w, int k)
{
	struct race *r = w->arg;
	int *fds = race_prepare(w);
	int i;

	worker_wait(w, 2);
	for (i = 1; i <= RACE_FILES; i++) {
		spin_until(&r->round, i);
		fds[i - 1] = recv_fd(r->sk[k]);
		if (fds[i - 1] < 0)
			worker_fail(w, "receive");
		__atomic_store_n(&r->ack[k], i, __ATOMIC_RELEASE);
	}
	worker_done(w, 2);
	race_close(w, fds);
}

static void race_receiver_0(struct worker *w)
{
	race_receiver(w, 0);
}

static void race_receiver_1(struct worker *w)
{
	race_receiver(w, 1);
}

/* Readings of the memcgs a, b and c. */
struct abc {
	long a, b, c;
};

static struct abc read_abc(FIXTURE_DATA(concurrency) *self)
{
	struct abc v = {
		slab_unreclaimable(self->a),
		slab_unreclaimable(self->b),
		slab_unreclaimable(self->c),
	};

	return v;
}

/*
 * Receivers in a and b take each file at the same moment; the sender runs
 * in @sender_cg (c, or NULL: the test process's, the root cgroup). A file
 * is charged when first installed, which is the sender's open(): to c, or
 * not at all from the root cgroup. Receiving it must never charge again,
 * however the two receives interleave: a and b stay where they were, and
 * the sum over a, b and c moves by @charged_per_file times RACE_FILES.
 * After everything is closed and a, b and c are removed, the parent's slab
 * is back where it started (a double charge would leave the second charge,
 * and its objcg reference, behind).
 */
static void scm_race(struct __test_metadata *_metadata,
		     FIXTURE_DATA(concurrency) *self, const char *sender_cg,
		     bool charged)
{
	struct race *r = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct abc base, raced, sender_closed, a_closed, all_closed;
	long parent_base, parent_after, sum, lo, hi;
	struct worker s, r0, r1;
	int sv[2], k;

	ASSERT_NE(MAP_FAILED, r);
	memset(r, 0, PAGE_SIZE);
	for (k = 0; k < 2; k++) {
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
		r->sk[k] = sv[0];
		r->peer[k] = sv[1];
	}
	parent_base = slab_unreclaimable(self->parent);
	ASSERT_EQ(0, worker_start(&r0, self->a, race_receiver_0, r));
	ASSERT_EQ(0, worker_start(&r1, self->b, race_receiver_1, r));
	ASSERT_EQ(0, worker_start(&s, sender_cg, race_sender, r));
	ASSERT_STEP(&r0, 1);
	ASSERT_STEP(&r1, 1);
	ASSERT_STEP(&s, 1);
	base = read_abc(self);

	/* the receivers wait for rounds; the sender drives them */
	__atomic_store_n(&r0.shm->go, 2, __ATOMIC_RELEASE);
	__atomic_store_n(&r1.shm->go, 2, __ATOMIC_RELEASE);
	ASSERT_STEP(&s, 2);
	ASSERT_STEP(&r0, 2);
	ASSERT_STEP(&r1, 2);
	raced = read_abc(self);
	ASSERT_STEP(&s, 3);
	sender_closed = read_abc(self);
	ASSERT_STEP(&r0, 3);
	a_closed = read_abc(self);
	ASSERT_STEP(&r1, 3);
	all_closed.c = slab_settle(self->c, base.c, self->slack);
	all_closed.a = slab_unreclaimable(self->a);
	all_closed.b = slab_unreclaimable(self->b);
	worker_finish(&s);
	worker_finish(&r0);
	worker_finish(&r1);
	for (k = 0; k < 2; k++) {
		close(r->sk[k]);
		close(r->peer[k]);
	}
	munmap(r, PAGE_SIZE);

	sum = (raced.a - base.a) + (raced.b - base.b) + (raced.c - base.c);
	ksft_print_msg("%d files raced: a %+ld, b %+ld, c %+ld bytes; %ld per file\n",
		       RACE_FILES, raced.a - base.a, raced.b - base.b,
		       raced.c - base.c, sum / RACE_FILES);
	/* the receivers' memcgs: never charged */
	EXPECT_LE(labs(raced.a - base.a), self->slack);
	EXPECT_LE(labs(raced.b - base.b), self->slack);
	/* in total: once per file (c), or never (root) */
	lo = charged ? RACE_FILES * self->lo : -self->slack;
	hi = charged ? RACE_FILES * self->hi : self->slack;
	EXPECT_GE(sum, lo);
	EXPECT_LE(sum, hi);
	/* the charge stays with c while a receiver holds the files */
	EXPECT_LE(labs(sender_closed.c - raced.c), self->slack);
	EXPECT_LE(labs(a_closed.c - raced.c), self->slack);
	/* and goes when the last reference does */
	EXPECT_LE(labs(all_closed.c - base.c), self->slack);
	EXPECT_LE(labs(all_closed.a - base.a), self->slack);
	EXPECT_LE(labs(all_closed.b - base.b), self->slack);

	ASSERT_EQ(0, remove_cgroup(self->a));
	ASSERT_EQ(0, remove_cgroup(self->b));
	ASSERT_EQ(0, remove_cgroup(self->c));
	/* only growth is a leak: the removed memcgs' own structures go too */
	parent_after = slab_settle_below(self->parent, parent_base + self->slack);
	ksft_print_msg("parent slab_unreclaimable: %ld -> %ld\n", parent_base,
		       parent_after);
	EXPECT_LE(parent_after - parent_base, self->slack);
}

TEST_F_TIMEOUT(concurrency, scm_rights_concurrent_receives_charged_once, 900)
{
	scm_race(_metadata, self, self->c, true);
}

TEST_F_TIMEOUT(concurrency, scm_rights_concurrent_receives_from_root_never_charged, 900)
{
	/* the guest init runs every test program in the root cgroup */
	ASSERT_EQ(0, proc_read_strstr(0, false, "cgroup", "0::/\n"))
		TH_LOG("the test process is not in the root cgroup, so its files would be charged");
	scm_race(_metadata, self, NULL, false);
}

/* --- a file taken by another task the moment its opener installs it --- */

/*
 * The one window userspace has on the pending flag: the instant the opener's
 * fd_install() publishes a file, another task sharing its fd table
 * (clone(CLONE_FILES)) can install it again with F_DUPFD. The opener runs
 * in c, the thief in a; in lockstep, the thief spins on F_DUPFD of the fd
 * the opener is about to get. The series clears FMODE_CHARGE_PENDING
 * before it publishes the file, so the thief must always find it clear:
 * a is never charged and c once per file, as on vanilla, which charged it
 * at allocation.
 */
#define STEAL_FILES		2000
/* The thief's copies go from here up, clear of the opener's fds. */
#define STEAL_FD_BASE		(STEAL_FILES + 64)

struct steal_arg {
	const char *thief_cg;
	struct worker *thief;	/* handshake page of the clone()d thief */
	int first;		/* the first fd the opener gets */
};

static int steal_thief(void *p)
{
	struct steal_arg *arg = p;
	struct worker *t = arg->thief;
	int i, fd;

	if (cg_enter_current(arg->thief_cg))
		worker_fail(t, "entering the thief's cgroup");
	worker_done(t, 1);

	worker_wait(t, 2);
	for (i = 0; i < STEAL_FILES; i++) {
		while ((fd = fcntl(arg->first + i, F_DUPFD,
				   STEAL_FD_BASE + i)) < 0)
			if (errno != EBADF)
				worker_fail(t, "F_DUPFD");
		t->shm->val[0] = i + 1;
	}
	worker_done(t, 2);
	worker_wait(t, 3);
	_exit(0);
}

static void steal_opener(struct worker *w)
{
	static char stack[256 << 10];
	struct steal_arg *arg = w->arg;
	volatile long *stolen = &arg->thief->shm->val[0];
	int i, fd;
	pid_t pid;

	if (prepare_fd_table(STEAL_FD_BASE + STEAL_FILES + 64))
		worker_fail(w, "prepare");
	fd = open("/dev/null", O_RDONLY);
	if (fd < 0)
		worker_fail(w, "prepare");
	close(fd);
	arg->first = fd;	/* copied into the thief by clone() */
	pid = clone(steal_thief, stack + sizeof(stack), CLONE_FILES | SIGCHLD,
		    arg);
	if (pid < 0)
		worker_fail(w, "clone(CLONE_FILES)");
	worker_done(w, 1);

	worker_wait(w, 2);
	for (i = 0; i < STEAL_FILES; i++) {
		fd = open("/dev/null", O_RDONLY);
		if (fd != arg->first + i)
			worker_fail(w, "open (an fd out of sequence)");
		while (*stolen <= i) {
			if (waitpid(pid, NULL, WNOHANG) == pid) {
				errno = ECHILD;
				worker_fail(w, "the thief died");
			}
			sched_yield();
		}
	}
	worker_done(w, 2);

	worker_wait(w, 3);	/* one table: closing here closes both */
	for (i = 0; i < STEAL_FILES; i++) {
		close(arg->first + i);
		close(STEAL_FD_BASE + i);
	}
	worker_done(w, 3);
	worker_wait(w, 4);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

TEST_F_TIMEOUT(concurrency, install_races_another_task_sharing_the_fd_table, 900)
{
	struct steal_arg arg = { .thief_cg = self->a };
	struct abc base, raced, closed;
	struct worker w, t;

	/* t is only a handshake page: its process is w's clone */
	memset(&t, 0, sizeof(t));
	t.shm = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, t.shm);
	memset((void *)t.shm, 0, PAGE_SIZE);
	t.pid = -1;
	arg.thief = &t;

	ASSERT_EQ(0, worker_start(&w, self->c, steal_opener, &arg));
	ASSERT_STEP(&w, 1);
	ASSERT_STEP(&t, 1);
	base = read_abc(self);
	__atomic_store_n(&t.shm->go, 2, __ATOMIC_RELEASE);
	ASSERT_STEP(&w, 2);
	ASSERT_STEP(&t, 2);
	raced = read_abc(self);
	ASSERT_STEP(&w, 3);
	closed.c = slab_settle(self->c, base.c, self->slack);
	closed.a = slab_unreclaimable(self->a);
	__atomic_store_n(&t.shm->go, INT_MAX, __ATOMIC_RELEASE);
	worker_finish(&w);

	ksft_print_msg("%d files taken by a task in a as their opener in c installed them: a %+ld, c %+ld bytes\n",
		       STEAL_FILES, raced.a - base.a, raced.c - base.c);
	/* the thief's memcg: never charged */
	EXPECT_LE(labs(raced.a - base.a), self->slack);
	/* the opener's: once per file */
	EXPECT_GE(raced.c - base.c, STEAL_FILES * self->lo);
	EXPECT_LE(raced.c - base.c, STEAL_FILES * self->hi);
	EXPECT_LE(labs(closed.c - base.c), self->slack);
	EXPECT_LE(labs(closed.a - base.a), self->slack);
	munmap((void *)t.shm, PAGE_SIZE);
}

/* --- churn while tasks move between memcgs ---------------------------- */

/* Workers per CPU: more than one, so that every CPU has one to run. */
#define CHURN_WORKERS_PER_CPU	2
#define CHURN_MAX_WORKERS	32
#define CHURN_SECONDS		10
/*
 * memory.max of a and b each: the workers' own pages plus less than their
 * pools, pipes and sockets come to at their peak. On vanilla under 2 CPUs
 * 1-10 workers were OOM-killed per run and the churn went on for the whole
 * CHURN_SECONDS; at 2 MiB all were killed within seconds, at 4 MiB none.
 */
#define CHURN_LIMIT		(5L << 19)	/* 2.5 MiB */
/* Every worker changes memcg this often. */
#define MIGRATE_EVERY_MS	20
/* OOM-killed workers are replaced, at most this many times (slow console). */
#define CHURN_MAX_RESPAWNS	20
#define CHURN_RESPAWN_CUTOFF_MS	200
/*
 * Operations that must have done something (churn.h), all workers, killed
 * ones included, and moves between a and b that succeeded: without them
 * the test proves nothing. Measured (2 CPUs, TCG, CHURN_SECONDS): 245000-
 * 444000 operations and 1956-1959 moves on the default profile, series;
 * 4068 operations (survivors only) and 172 moves on the debug profile
 * (KASAN, lockdep). A quarter of the slowest.
 */
#define MIN_CHURN_DONE		1000
#define MIN_CHURN_MOVES		40

/* How a churn worker ended: 1 killed (SIGKILL), 0 fine, -1 otherwise. */
static int churn_end(struct __test_metadata *_metadata, struct worker *w,
		     int i)
{
	if (WIFSIGNALED(w->status) && WTERMSIG(w->status) == SIGKILL)
		return 1;
	if (WIFEXITED(w->status) && WEXITSTATUS(w->status) == 0)
		return 0;
	TH_LOG("worker %d %s", i, worker_end(w));
	return -1;
}

/*
 * Workers on every CPU open, close, dup, create pipes, eventfds and
 * socketpairs and pass files over SCM_RIGHTS (churn.h), under a tight
 * limit, while the test process moves each of them between a and b every
 * MIGRATE_EVERY_MS. A file opened in a may be installed, received and
 * closed by tasks in b and the other way round; charges stay with the memcg
 * they were made to (cgroup v2 moves no charges). OOM kills are tolerated
 * (pipes and sockets are charged at allocation on both kernels) as long as
 * memory.events counts each. Once everything is closed and a and b are
 * removed, the parent's slab is back where it started; a splat on the
 * console fails the run.
 */
TEST_F_TIMEOUT(concurrency, churn_while_migrating, 900)
{
	int nw = CHURN_WORKERS_PER_CPU * online_cpus(), shared[2], i;
	int spawned = 0, killed = 0, failed = 0, end;
	struct churn_total total = { 0 };
	long base, after, deadline, next_move;
	long moves = 0, move_errors = 0, oom_kills, start, churned_ms = 0;
	struct churn_arg args[CHURN_MAX_WORKERS];
	struct worker w[CHURN_MAX_WORKERS];
	bool retired[CHURN_MAX_WORKERS] = { false };
	bool in_b[CHURN_MAX_WORKERS] = { false };

	if (nw > CHURN_MAX_WORKERS)
		nw = CHURN_MAX_WORKERS;
	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_DGRAM, 0, shared));
	base = slab_unreclaimable(self->parent);
	oom_kills = memcg_event(self->parent, "oom_kill ");
	ASSERT_EQ(0, cg_write_numeric(self->a, "memory.max", CHURN_LIMIT));
	ASSERT_EQ(0, cg_write_numeric(self->b, "memory.max", CHURN_LIMIT));
	start = now_ms();
	deadline = start + CHURN_SECONDS * 1000;
	for (i = 0; i < nw; i++) {
		args[i].shared[0] = shared[0];
		args[i].shared[1] = shared[1];
		args[i].deadline = deadline;
		args[i].seed = ++spawned;
		ASSERT_EQ(0, worker_start(&w[i], self->a, churn_worker,
					  &args[i]));
	}
	next_move = now_ms();
	while (now_ms() < deadline - CHURN_RESPAWN_CUTOFF_MS) {
		bool move = now_ms() >= next_move;

		for (i = 0; i < nw; i++) {
			struct worker *wi = &w[i];

			if (retired[i])
				continue;
			if (worker_alive(wi)) {
				if (!move)
					continue;
				if (cg_enter(in_b[i] ? self->a : self->b, wi->pid)) {
					move_errors++;	/* it may just have died */
				} else {
					moves++;
					in_b[i] = !in_b[i];
				}
				continue;
			}
			end = churn_end(_metadata, wi, i);
			killed += end > 0;
			failed += end < 0;
			churn_add(&total, wi);	/* what it did before it died */
			munmap((void *)wi->shm, PAGE_SIZE);
			if (spawned - nw >= CHURN_MAX_RESPAWNS) {
				retired[i] = true;
				continue;
			}
			args[i].seed = ++spawned;
			in_b[i] = false;
			ASSERT_EQ(0, worker_start(wi, self->a, churn_worker,
						  &args[i]));
		}
		if (move)
			next_move += MIGRATE_EVERY_MS;
		for (i = 0; i < nw && retired[i]; i++)
			;
		if (i < nw)
			churned_ms = now_ms() - start;
		usleep(2000);
	}
	for (i = 0; i < nw; i++) {
		struct worker *wi = &w[i];

		if (retired[i])
			continue;
		worker_step(wi, 1);
		worker_finish(wi);
		churn_add(&total, wi);
		end = churn_end(_metadata, wi, i);
		killed += end > 0;
		failed += end < 0;
	}
	oom_kills = memcg_event(self->parent, "oom_kill ") - oom_kills;
	ksft_print_msg("workers: %d on %ld CPUs for %ld ms, moves: %ld (%ld failed), killed: %d, oom_kill: %ld\n",
		       spawned, online_cpus(), churned_ms, moves, move_errors,
		       killed, oom_kills);
	churn_report(&total);
	EXPECT_EQ(0, failed);
	EXPECT_EQ(killed, oom_kills) TH_LOG("workers killed other than by OOM");
	EXPECT_GE(moves, MIN_CHURN_MOVES);
	EXPECT_GE(total.done, MIN_CHURN_DONE)
		TH_LOG("too little churn to prove anything");

	/* drop what is still in flight, then the memcgs */
	close(shared[0]);
	close(shared[1]);
	ASSERT_EQ(0, remove_cgroup(self->a));
	ASSERT_EQ(0, remove_cgroup(self->b));
	/* only growth is a leak (see file_stress) */
	after = slab_settle_below(self->parent, base + self->slack);
	ksft_print_msg("parent slab_unreclaimable: %ld -> %ld\n", base, after);
	ASSERT_LE(after - base, self->slack);
}

TEST_HARNESS_MAIN
