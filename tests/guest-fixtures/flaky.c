// Fails when other guest programs share its boot, passes when it runs alone:
// a deterministic stand-in for a flaky test, so the retry of tests declared
// flaky can be tested on the real path (the retry boot runs it alone).
#include <stdio.h>
#include <string.h>

int main(void)
{
	char cmdline[4096] = "";
	FILE *f = fopen("/proc/cmdline", "r");
	char *tests;
	int alone;

	if (f) {
		if (!fgets(cmdline, sizeof(cmdline), f))
			cmdline[0] = '\0';
		fclose(f);
	}
	tests = strstr(cmdline, "harness.tests=");
	alone = tests && !strchr(strtok(tests, " \n"), ',');
	printf("TAP version 13\n1..1\n");
	if (!alone)
		printf("# not alone: %s\n", tests ? tests : "(no harness.tests=)");
	printf("%s 1 passes_when_alone\n", alone ? "ok" : "not ok");
	return alone ? 0 : 1;
}
