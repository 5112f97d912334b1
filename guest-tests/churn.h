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
	return sendmsg(sk, &msg, MSG_DONTWAIT) < 0 ? -1 : 0;
}

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

	if (recvmsg(sk, &msg, MSG_DONTWAIT) < 0)
		return errno == EAGAIN ? 0 : -1;
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		int k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int), i;

		if (cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (i = 0; i < k; i++)
			pool_add(p, ((int *)CMSG_DATA(cm))[i]);
	}
	return 0;
}

/* One operation on the pool; -1 with errno set on failure. */
static inline int churn_once(struct pool *p, int shared[2])
{
	int fd, sv[2];

	switch (rand() % 10) {
	case 0: case 1: case 2:
		fd = open("/dev/null", O_RDONLY);
		if (fd < 0)
			return -1;
		pool_add(p, fd);
		return 0;
	case 3: case 4:
		pool_drop(p);
		return 0;
	case 5:
		fd = pool_pick(p);
		if (fd < 0)
			return 0;
		fd = dup(fd);
		if (fd < 0)
			return -1;
		pool_add(p, fd);
		return 0;
	case 6:
		if (pipe(sv))
			return -1;
		pool_add(p, sv[0]);
		pool_add(p, sv[1]);
		return 0;
	case 7:
		fd = eventfd(0, 0);
		if (fd < 0)
			return -1;
		pool_add(p, fd);
		return 0;
	case 8:
		/* to ourselves; sometimes closed with the files in flight */
		if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv))
			return -1;
		if (send_some(sv[0], p) == 0 && rand() % 2)
			recv_some(sv[1], p);
		close(sv[0]);
		close(sv[1]);
		return 0;
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

/*
 * A worker (common.h) that churns until the deadline, then reports its
 * operations (val[0]) and the refused ones (val[1]) as step 1 and waits.
 */
static inline void churn_worker(struct worker *w)
{
	struct churn_arg *arg = w->arg;
	struct pool *p = calloc(1, sizeof(*p));
	long ops = 0, refused = 0, deadline = arg->deadline;

	if (!p)
		worker_fail(w, "prepare");
	/*
	 * Growing the fd table at a tight limit may be refused too (the
	 * series' open() says ENOMEM where vanilla OOM-kills): such a worker
	 * churns nothing and counts one refusal.
	 */
	errno = 0;
	if (prepare_fd_table(POOL_SIZE + 256)) {
		if (!tolerated(errno))
			worker_fail(w, "prepare");
		refused++;
		deadline = 0;
	}
	srand(arg->seed);
	while (now_ms() < deadline) {
		errno = 0;
		if (churn_once(p, arg->shared)) {
			if (!tolerated(errno))
				worker_fail(w, "file operation");
			refused++;
		}
		ops++;
	}
	w->shm->val[0] = ops;
	w->shm->val[1] = refused;
	worker_done(w, 1);
	worker_wait(w, 2);
}

#endif /* GUEST_TESTS_CHURN_H */
