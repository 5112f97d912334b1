// SPDX-License-Identifier: GPL-2.0
/*
 * Linked into every guest program. The guest init pipes their stdout, so
 * stdio would buffer it by blocks, and every fork()ed child that exit()s
 * (test_kmem, test_memcontrol, cg_run()) would print the parent's pending
 * output once more. Line buffering leaves nothing pending at a fork.
 */
#include <stdio.h>

__attribute__((constructor)) static void line_buffer_stdout(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}
