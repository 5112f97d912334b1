// Crash the kernel on purpose: sysrq-c dereferences NULL in the kernel.
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	int fd = open("/proc/sysrq-trigger", O_WRONLY);

	printf("TAP version 13\n1..1\n");
	fflush(stdout);
	if (fd < 0 || write(fd, "c", 1) != 1)
		perror("sysrq-trigger");
	printf("not ok 1 the kernel survived sysrq-c\n");
	return 1;
}
