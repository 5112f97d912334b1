/* SPDX-License-Identifier: GPL-2.0 */
/*
 * File churn for the stress tests (file_stress, file_concurrency): a worker
 * keeps a pool of descriptors and, one random operation at a time, opens,
 * closes, dups, creates pipes, eventfds and socketpairs, and passes files
 * with SCM_RIGHTS to itself and, over a datagram socketpair shared by all
 * workers, to the others.
 */
#ifndef GUEST_TESTS_CHURN_H
#define GUEST_TESTS_CHURN_H

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common.h"

/* Files each worker keeps at most; RLIMIT_NOFILE is raised above it. */
#define POOL_SIZE		1000
/* At most this many descriptors per SCM_RIGHTS message. */
#define FDS_PER_MSG		4

/* Errors a worker at its memcg limit may see. */
static inline bool tolerated(int err)
{
	return err == ENOMEM || err == EMFILE || err == ENFILE ||
	       err == ETOOMANYREFS || err == EAGAIN || err == ENOBUFS;
}

struct pool {
	int fd[POOL_SIZE];
	int n;
};

static inline void pool_add(struct pool *p, int fd)
{
	if (p->n == POOL_SIZE) {
		int i = rand() % POOL_SIZE;

		close(p->fd[i]);
		p->fd[i] = fd;
	} else {
		p->fd[p->n++] = fd;
	}
}

static inline int pool_pick(struct pool *p)
{
	return p->n ? p->fd[rand() % p->n] : -1;
}

static inline void pool_drop(struct pool *p)
{
	int i;

	if (!p->n)
		return;
	i = rand() % p->n;
	close(p->fd[i]);
	p->fd[i] = p->fd[--p->n];
}

/* 1 if descriptors were sent, 0 if the pool was empty, -1 on failure. */
static inline int send_some(int sk, struct pool *p)
{
	char cbuf[CMSG_SPACE(FDS_PER_MSG * sizeof(int))] = { 0 };
	char byte = 0;
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf,
	};
	int fds[FDS_PER_MSG], i, k = 1 + rand() % FDS_PER_MSG;
	struct cmsghdr *cm;

	for (i = 0; i < k; i++)
		if ((fds[i] = pool_pick(p)) < 0)
			return 0;
	msg.msg_controllen = CMSG_SPACE(k * sizeof(int));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(k * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, k * sizeof(int));
	return sendmsg(sk, &msg, MSG_DONTWAIT) < 0 ? -1 : 1;
}

/* 1 if descriptors were received, 0 if none were waiting, -1 on failure. */
static inline int recv_some(int sk, struct pool *p)
{
	char cbuf[CMSG_SPACE(FDS_PER_MSG * sizeof(int))];
	char byte;
	struct iovec iov = { &byte, 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cbuf, .msg_controllen = sizeof(cbuf),
	};
	struct cmsghdr *cm;
	int got = 0;

	if (recvmsg(sk, &msg, MSG_DONTWAIT) < 0)
		return errno == EAGAIN ? 0 : -1;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		int k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int), i;

		if (cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (i = 0; i < k; i++)
			pool_add(p, ((int *)CMSG_DATA(cm))[i]);
		got += k;
	}
	return got > 0;
}

/*
 * One operation on the pool: 1 if it made, closed, duplicated or passed a
 * file, 0 if there was nothing to do (an empty pool, nothing to receive),
 * -1 with errno set on failure.
 */
static inline int churn_once(struct pool *p, int shared[2])
{
	int fd, sv[2], ret;

	switch (rand() % 10) {
	case 0: case 1: case 2:
		fd = open("/dev/null", O_RDONLY);
		if (fd < 0)
			return -1;
		pool_add(p, fd);
		return 1;
	case 3: case 4:
		if (!p->n)
			return 0;
		pool_drop(p);
		return 1;
	case 5:
		fd = pool_pick(p);
		if (fd < 0)
			return 0;
		fd = dup(fd);
		if (fd < 0)
			return -1;
		pool_add(p, fd);
		return 1;
	case 6:
		if (pipe(sv))
			return -1;
		pool_add(p, sv[0]);
		pool_add(p, sv[1]);
		return 1;
	case 7:
		fd = eventfd(0, 0);
		if (fd < 0)
			return -1;
		pool_add(p, fd);
		return 1;
	case 8:
		/* to ourselves; sometimes closed with the files in flight */
		if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
			return -1;
		ret = send_some(sv[0], p);
		if (ret > 0 && rand() % 2)
			ret = recv_some(sv[1], p);
		close(sv[0]);
		close(sv[1]);
		return ret < 0 ? -1 : 1;	/* the socketpair was made */
	default:
		/* to and from the other workers */
		if (rand() % 2)
			return send_some(shared[0], p);
		return recv_some(shared[1], p);
	}
}

struct churn_arg {
	int shared[2];		/* one datagram socketpair for all workers */
	int seed;
	long deadline;		/* CLOCK_MONOTONIC ms */
};

/* What a churn worker reports in its val[] (step 1). */
enum {
	CHURN_OPS,		/* operations tried */
	CHURN_DONE,		/* operations that did something (churn_once() 1) */
	CHURN_REFUSED,		/* operations that failed with a tolerated errno */
	CHURN_ENOMEM,		/* of which ENOMEM */
	CHURN_IDLE,		/* 1: its fd table could not be grown, no churn */
};

/* Sum of the CHURN_* counts of workers, for the tests' reports. */
struct churn_total {
	long ops, done, refused, enomem, idle;
};

static inline void churn_add(struct churn_total *t, struct worker *w)
{
	t->ops += w->shm->val[CHURN_OPS];
	t->done += w->shm->val[CHURN_DONE];
	t->refused += w->shm->val[CHURN_REFUSED];
	t->enomem += w->shm->val[CHURN_ENOMEM];
	t->idle += w->shm->val[CHURN_IDLE];
}

/*
 * A worker (common.h) that churns until the deadline, then reports its
 * counts (CHURN_*) as step 1 and waits. The counts are also kept up to
 * date while it runs, so that the test can add up those of workers that
 * were OOM-killed: the shared page costs nothing to write.
 */
static inline void churn_worker(struct worker *w)
{
	struct churn_arg *arg = w->arg;
	struct pool *p = calloc(1, sizeof(*p));
	volatile long *val = w->shm->val;
	long deadline = arg->deadline;
	int ret;

	if (!p)
		worker_fail(w, "prepare");
	/*
	 * Growing the fd table at a tight limit may be refused too: the
	 * series' open() says ENOMEM where vanilla OOM-kills. Such a worker
	 * churns nothing and says so (CHURN_IDLE); the tests' lower bound on
	 * work done counts only what the others did.
	 */
	errno = 0;
	if (prepare_fd_table(POOL_SIZE + 256)) {
		if (errno != ENOMEM)
			worker_fail(w, "prepare");
		val[CHURN_IDLE] = 1;
		deadline = 0;
	}
	srand(arg->seed);
	while (now_ms() < deadline) {
		errno = 0;
		ret = churn_once(p, arg->shared);
		if (ret < 0) {
			if (!tolerated(errno))
				worker_fail(w, "file operation");
			val[CHURN_REFUSED]++;
			val[CHURN_ENOMEM] += errno == ENOMEM;
		}
		val[CHURN_DONE] += ret > 0;
		val[CHURN_OPS]++;
	}
	worker_done(w, 1);
	worker_wait(w, 2);
}

/* One line on how much churn the workers did, for the test's output. */
static inline void churn_report(const struct churn_total *t)
{
	ksft_print_msg("churn: %ld operations, %ld did something, %ld refused (%ld ENOMEM), %ld workers idle (fd table refused)\n",
		       t->ops, t->done, t->refused, t->enomem, t->idle);
}

#endif /* GUEST_TESTS_CHURN_H */
